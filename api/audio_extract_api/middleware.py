"""The outer edge of every request: body-size cap, last-resort error envelope, metrics, and the
``Server-Timing`` header (``timing.py``).

A pure ASGI middleware so it sees the byte stream itself: ``Content-Length`` over the cap is
refused before reading, and a body without one (chunked, or lying) is counted as it arrives and
cut off at the cap with 413 PAYLOAD_TOO_LARGE.
"""

from __future__ import annotations

import logging
import time

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import timing
from .errors import ApiError, InternalError, InvalidRequest, PayloadTooLarge, render
from .metrics import Metrics
from .settings import Settings

log = logging.getLogger(__name__)

MULTIPART_SLACK = 1 << 20
"""Room for multipart boundaries and part headers on top of the upload cap."""

CLIENT_CLOSED = 499
"""The status recorded for a request whose client went away before its answer (no answer is
sent): not a 500, which alerts count as the service's own failures."""


PREFIXES = ("/audio-extract/v1", "/v1")


def route_template(scope: Scope) -> str:
    """The matched route's template with its mount prefix (bounded label values for metrics)."""
    path = getattr(scope.get("route"), "path", None)
    if path is None:
        return "unmatched"
    for prefix in PREFIXES:
        if scope["path"].startswith(prefix + "/") and not path.startswith(prefix):
            return prefix + path
    return path


class Edge:
    def __init__(self, app: ASGIApp, settings: Settings, metrics: Metrics) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics

    def _limit(self, path: str) -> int:
        if path.rstrip("/").endswith("/uploads"):
            return self.settings.max_upload_bytes + MULTIPART_SLACK
        return self.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        spans = timing.start()
        status = 500
        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                message = {**message, "headers": [*message.get("headers", ()), spans.header()]}
            await send(message)

        async def answer(err: ApiError) -> None:
            await render(err)(scope, receive, tracking_send)

        try:
            limit = self._limit(scope["path"])
            declared = dict(scope["headers"]).get(b"content-length")
            try:
                declared_len = int(declared) if declared is not None else None
            except ValueError:
                raise InvalidRequest("Invalid Content-Length") from None
            if declared_len is not None and declared_len > limit:
                raise PayloadTooLarge(f"Request body is over the limit of {limit} bytes")
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise PayloadTooLarge(f"Request body is over the limit of {limit} bytes")
                return message

            await self.app(scope, limited_receive, tracking_send)
        except ApiError as e:
            if not response_started:
                await answer(e)
        except ClientDisconnect:
            log.info("client went away during %s %s", scope.get("method"), scope.get("path"))
            if not response_started:
                status = CLIENT_CLOSED
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not response_started:
                await answer(InternalError())
        finally:
            template = route_template(scope)
            method = scope.get("method", "")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - spans.started_at)
