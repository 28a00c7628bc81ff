"""The API's only door to Kubernetes: ExtractionBatch objects through an async client.

Client exceptions stop here. Callers see plain dicts, ``None`` for "not found", ``AlreadyExists``
/ ``Conflict`` for the two outcomes they act on, and ``ApiError``s for everything else
(unreachable or overloaded API server → 503 SERVICE_UNAVAILABLE).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from audio_extract_common.ids import KEY_LABEL
from audio_extract_common.resource import GROUP, PLURAL, VERSION

from .errors import ApiError, InternalError, InvalidRequest, ServiceUnavailable
from .settings import Settings

log = logging.getLogger(__name__)


class AlreadyExists(Exception):
    """create: an object of that name exists."""


class Conflict(Exception):
    """patch/replace: the resourceVersion we held is stale."""


class WatchExpired(Exception):
    """watch: the resourceVersion is too old (410 Gone); list again."""


def _convert(e: BaseException) -> ApiError:
    if isinstance(e, ApiException):
        if e.status == 429 or (e.status or 0) >= 500:
            retry = (e.headers or {}).get("Retry-After", "5")
            return ServiceUnavailable(headers={"Retry-After": str(retry)})
        if e.status in (400, 422):
            # The resource schema refused what our own validation let through: report it, it is
            # the client's request (the CRD's CEL rules mirror the API's validation).
            try:
                msg = json.loads(e.body).get("message", "rejected by the Kubernetes API")
            except (TypeError, ValueError):
                msg = "rejected by the Kubernetes API"
            return InvalidRequest(str(msg)[:500])
        log.error("Kubernetes API answered %s %s", e.status, e.reason)
        return InternalError()
    if isinstance(e, aiohttp.ClientError | asyncio.TimeoutError | OSError | config.ConfigException):
        log.warning("Kubernetes API unreachable: %r", e)
        return ServiceUnavailable(headers={"Retry-After": "5"})
    log.exception("unexpected Kubernetes client error", exc_info=e)
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
                    cfg = client.Configuration()
                    try:
                        if self.settings.kubeconfig:
                            await config.load_kube_config(
                                config_file=str(self.settings.kubeconfig),
                                context=self.settings.kube_context,
                                client_configuration=cfg,
                            )
                        else:
                            config.load_incluster_config(client_configuration=cfg)
                    except (config.ConfigException, OSError) as e:
                        raise _convert(e) from None
                    self._api = client.ApiClient(configuration=cfg)
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
            return await getattr(api, fn)(GROUP, VERSION, *args, _request_timeout=self.timeout, **kwargs)
        except ApiException as e:
            if e.status == 404:
                raise LookupError from None
            if e.status == 409:
                reason = ""
                with contextlib.suppress(TypeError, ValueError, AttributeError):
                    reason = json.loads(e.body).get("reason", "")
                raise (AlreadyExists if reason == "AlreadyExists" else Conflict)() from None
            raise _convert(e) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise _convert(e) from None

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call("create_namespaced_custom_object", self.namespace, PLURAL, body)

    async def get(self, name: str) -> dict[str, Any] | None:
        try:
            return await self._call("get_namespaced_custom_object", self.namespace, PLURAL, name)
        except LookupError:
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
        except LookupError:
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
        except LookupError:
            return None

    async def list(self) -> tuple[list[dict[str, Any]], str]:
        found = await self._call("list_namespaced_custom_object", self.namespace, PLURAL)
        return found.get("items") or [], found["metadata"]["resourceVersion"]

    async def watch(self, resource_version: str, timeout_seconds: int = 300) -> AsyncIterator[dict[str, Any]]:
        """Events after ``resource_version`` until the server closes the stream."""
        api = await self._client()
        try:
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
        except ApiException as e:
            if e.status == 410:
                raise WatchExpired() from None
            raise _convert(e) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise _convert(e) from None
        if resp.status >= 300:
            # Without preloading, the client does not check the status: a 403 or 5xx would read
            # as a stream of non-events and the caller would re-watch in a hot loop.
            body = (await resp.content.read(4096)).decode(errors="replace")
            resp.close()
            if resp.status == 410:
                raise WatchExpired()
            log.error("Kubernetes API answered %s to a watch: %s", resp.status, body[:300])
            raise ServiceUnavailable(f"watch refused with HTTP {resp.status}")
        try:
            while line := await resp.content.readline():
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    if (event.get("object") or {}).get("code") == 410:
                        raise WatchExpired()
                    raise ServiceUnavailable(f"watch error: {event.get('object')}")
                yield event
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise _convert(e) from None
        finally:
            # close, not release: a half-read watch stream must not go back to the pool
            resp.close()

    async def ping(self) -> None:
        """Raise SERVICE_UNAVAILABLE unless the API server answers a one-item list of batches
        (readiness: reachable, the CRD installed, and our RBAC allowing it)."""
        api = await self._client()
        try:
            await api.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, limit=1, _request_timeout=min(self.timeout, 3.0)
            )
        except (ApiException, aiohttp.ClientError, TimeoutError, OSError) as e:
            log.warning("not ready: %r", e)
            raise ServiceUnavailable() from e
