"""The API's only door to Kubernetes: ExtractionBatch objects through the common client.

The tree of ``audio_extract_common.kube`` stops here. Callers see plain dicts, ``None`` for "not
found", ``AlreadyExists`` / ``Conflict`` for the two outcomes they act on, ``WatchExpired`` from a
watch, and ``ApiError``s for everything else (``api_error``: unreachable or overloaded API server →
503 SERVICE_UNAVAILABLE).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from kubernetes_asyncio import client

from audio_extract_common.batch_resource import GROUP, PLURAL, VERSION
from audio_extract_common.ids import KEY_LABEL
from audio_extract_common.kube import (
    AlreadyExists,
    Conflict,
    Invalid,
    KubeError,
    NotFound,
    Transient,
    WatchExpired,
    connect,
    converted,
)

from . import timing
from .errors import ApiError, InternalError, InvalidRequest, ServiceUnavailable
from .settings import Settings

log = logging.getLogger(__name__)


def api_error(e: KubeError) -> ApiError:
    """The envelope of an error of the Kubernetes API that no caller acts on."""
    if isinstance(e, Transient):
        if not e.status:
            log.warning("Kubernetes API unreachable: %r", e)
        return ServiceUnavailable(headers={"Retry-After": e.retry_after or "5"})
    if isinstance(e, Invalid):
        # The resource schema refused what our own validation let through: report it, it is
        # the client's request (the CRD's CEL rules mirror the API's validation).
        return InvalidRequest((e.message or "rejected by the Kubernetes API")[:500])
    log.error("Kubernetes API answered %s %s", e.status, e.reason)
    return InternalError()


class Kube:
    """ExtractionBatch CRUD in one namespace. The client is made on first use, in the running loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.namespace = settings.namespace
        self.timeout = settings.kube_timeout_seconds
        self._api: client.ApiClient | None = None
        self._lock = asyncio.Lock()

    async def _client(self) -> client.CustomObjectsApi:
        if self._api is None:
            async with self._lock:
                if self._api is None:
                    try:
                        self._api = await connect(self.settings.kubeconfig, self.settings.kube_context)
                    except KubeError as e:
                        raise api_error(e) from None
        return client.CustomObjectsApi(self._api)

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()
            self._api = None
            # TLS transports finish closing on the next loop iterations (aiohttp's graceful
            # shutdown advice); without this the loop may end with their sockets still open.
            await asyncio.sleep(0.1)

    async def _call(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        api = await self._client()
        try:
            with timing.waiting_on_kube(), converted():
                return await getattr(api, fn)(GROUP, VERSION, *args, _request_timeout=self.timeout, **kwargs)
        except (NotFound, AlreadyExists, Conflict):
            raise
        except KubeError as e:
            raise api_error(e) from None

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call("create_namespaced_custom_object", self.namespace, PLURAL, body)

    async def get(self, name: str) -> dict[str, Any] | None:
        try:
            return await self._call("get_namespaced_custom_object", self.namespace, PLURAL, name)
        except NotFound:
            return None

    async def find_by_key(self, key: str) -> dict[str, Any] | None:
        """A batch applied with kubectl: the operator labels it with its key."""
        try:
            found = await self._call(
                "list_namespaced_custom_object",
                self.namespace,
                PLURAL,
                label_selector=f"{KEY_LABEL}={key}",
                limit=2,
            )
        except NotFound:
            return None
        items = found.get("items") or []
        return items[0] if items else None

    async def patch(self, name: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        """A JSON merge patch; include ``metadata.resourceVersion`` to make it conditional."""
        try:
            return await self._call(
                "patch_namespaced_custom_object",
                self.namespace,
                PLURAL,
                name,
                patch,
                _content_type="application/merge-patch+json",
            )
        except NotFound:
            return None

    async def list(self) -> tuple[list[dict[str, Any]], str]:
        found = await self._call("list_namespaced_custom_object", self.namespace, PLURAL)
        return found.get("items") or [], found["metadata"]["resourceVersion"]

    async def watch(self, resource_version: str, timeout_seconds: int = 300) -> AsyncIterator[dict[str, Any]]:
        """Events after ``resource_version`` until the server closes the stream."""
        api = await self._client()
        try:
            with converted():
                resp = await api.list_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    watch=True,
                    allow_watch_bookmarks=True,
                    resource_version=resource_version,
                    timeout_seconds=timeout_seconds,
                    _preload_content=False,
                    _request_timeout=timeout_seconds + 30,
                )
        except WatchExpired:
            raise
        except KubeError as e:
            raise api_error(e) from None
        if resp.status >= 300:
            # Without preloading, the client does not check the status: a 403 or 5xx would read
            # as a stream of non-events and the caller would re-watch in a hot loop.
            body = (await resp.content.read(4096)).decode(errors="replace")
            resp.close()
            if resp.status == 410:
                raise WatchExpired(resp.status, "Expired", body[:300])
            log.error("Kubernetes API answered %s to a watch: %s", resp.status, body[:300])
            raise ServiceUnavailable(f"watch refused with HTTP {resp.status}")
        try:
            with converted():
                while line := await resp.content.readline():
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        if status.get("code") == 410:
                            raise WatchExpired(
                                410, status.get("reason") or "Expired", status.get("message") or ""
                            )
                        raise ServiceUnavailable(f"watch error: {event.get('object')}")
                    yield event
        except Transient as e:
            raise api_error(e) from None
        finally:
            # close, not release: a half-read watch stream must not go back to the pool
            resp.close()

    async def ping(self) -> None:
        """Raise SERVICE_UNAVAILABLE unless the API server answers a one-item list of batches
        (readiness: reachable, the CRD installed, and our RBAC allowing it)."""
        api = await self._client()
        try:
            with converted():
                await api.list_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, limit=1, _request_timeout=min(self.timeout, 3.0)
                )
        except KubeError as e:
            log.warning("not ready: %r", e)
            raise ServiceUnavailable() from e
