"""The operator's calls of the Kubernetes API: plain-dict REST calls on the common client.

A call raises the tree of ``audio_extract_common.kube`` (``NotFound``, ``Conflict``, ``Transient``,
...), never a client exception. Objects are plain dicts, like kopf's bodies, so the pure builders
and mappings work on either.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from kubernetes_asyncio import client as k8s

from audio_extract_common.batch_resource import GROUP, PLURAL, VERSION
from audio_extract_common.kube import KubeError, NotFound, connect, converted

from . import metrics

MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT = 30.0
"""Seconds for one API request; a hung connection must not hold a handler past its timeout."""


def resource_version(body: Mapping[str, Any]) -> int:
    """An object's resourceVersion as a number, 0 if it has none. Opaque by contract, but the
    etcd revision in every API server this runs on: newer copies of an object have larger ones."""
    try:
        return int((body.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


def resource_of(path: str) -> str:
    """The resource a request path names, with its subresource: ``/apis/batch/v1/namespaces/ns/jobs/j``
    → ``jobs``, ``.../extractionbatches/b/status`` → ``extractionbatches/status``."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]  # after /api/v1 or /apis/<group>/<version>
    if len(rest) >= 2 and rest[0] == "namespaces":
        rest = rest[2:]
    if not rest:
        return "namespaces" if len(parts) > 2 else "-"
    return rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")


def batch_path(namespace: str, name: str | None = None, sub: str = "") -> str:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    return path + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


def job_path(namespace: str, name: str | None = None) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs" + (f"/{name}" if name else "")


def batches_path(namespace: str | None) -> str:
    """Batches of one namespace, or of every namespace (None)."""
    return batch_path(namespace) if namespace else f"/apis/{GROUP}/{VERSION}/{PLURAL}"


def jobs_path(namespace: str | None) -> str:
    """Jobs of one namespace, or of every namespace (None)."""
    return job_path(namespace) if namespace else "/apis/batch/v1/jobs"


class Kube:
    """Async client for the few calls the operator makes."""

    def __init__(self, api: k8s.ApiClient) -> None:
        self.api = api

    @classmethod
    async def connect(cls, kubeconfig: str | None = None) -> Kube:
        return cls(await connect(kubeconfig))

    async def close(self) -> None:
        await self.api.close()

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        code = "0"  # no answer: the client failed, or the call was cancelled
        try:
            with converted():
                answer = await self.api.call_api(
                    path,
                    method,
                    query_params=list((query or {}).items()),
                    header_params={"Accept": "application/json", "Content-Type": content_type},
                    body=body,
                    auth_settings=["BearerToken"],
                    response_types_map={200: "object", 201: "object", 202: "object"},
                    _return_http_data_only=True,
                    _request_timeout=REQUEST_TIMEOUT,
                )
            code = "2xx"
            return answer
        except KubeError as e:
            code = str(e.status)
            raise
        finally:
            metrics.kube_request(method, resource_of(path), code)

    async def pages(
        self, path: str, limit: int, query: Mapping[str, str] | None = None
    ) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        """A list in pages of ``limit`` items: ``(items, resourceVersion)``, where every page has the
        first page's resourceVersion (the server answers a consistent snapshot across pages), so a
        caller can tell what was created after it. A continue token that expired (410, after about
        five minutes) raises WatchExpired: the caller's next pass starts over."""
        token = ""
        while True:
            q = {**(query or {}), "limit": str(limit)}
            if token:
                q["continue"] = token
            listing = await self.call("GET", path, query=q)
            meta = listing.get("metadata") or {}
            yield listing.get("items") or [], meta.get("resourceVersion") or ""
            token = meta.get("continue") or ""
            if not token:
                return

    # --- ExtractionBatch ------------------------------------------------------------------------

    async def get_batch(self, namespace: str, name: str) -> dict[str, Any]:
        return await self.call("GET", batch_path(namespace, name))

    async def patch_batch_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str | None = None
    ) -> dict[str, Any]:
        """Merge-patch ``status``; with ``resource_version`` it fails with Conflict if the object moved."""
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        return await self.call("PATCH", batch_path(namespace, name, "status"), body, content_type=MERGE_PATCH)

    async def patch_batch(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return await self.call("PATCH", batch_path(namespace, name), patch, content_type=MERGE_PATCH)

    async def delete_batch(self, namespace: str, name: str, uid: str | None = None) -> None:
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        with contextlib.suppress(NotFound):
            await self.call("DELETE", batch_path(namespace, name), body)

    # --- Jobs and Pods ------------------------------------------------------------------------

    async def create_job(self, job: Mapping[str, Any]) -> dict[str, Any]:
        return await self.call("POST", job_path(job["metadata"]["namespace"]), dict(job))

    async def get_job(self, namespace: str, name: str) -> dict[str, Any]:
        return await self.call("GET", job_path(namespace, name))

    async def set_job_suspended(
        self, namespace: str, name: str, suspend: bool, uid: str | None = None
    ) -> dict[str, Any]:
        patch: dict[str, Any] = {"spec": {"suspend": suspend}}
        if uid:  # only the Job we decided about, not a same-named successor
            patch["metadata"] = {"uid": uid}
        return await self.call("PATCH", job_path(namespace, name), patch, content_type=MERGE_PATCH)

    async def delete_job(self, namespace: str, name: str, uid: str | None = None) -> None:
        """Delete a Job and (in the background) its pods; a missing Job is fine. With ``uid``, only
        that Job, not a same-named successor (Conflict)."""
        options: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            options["preconditions"] = {"uid": uid}
        with contextlib.suppress(NotFound):
            await self.call("DELETE", job_path(namespace, name), options)

    async def list_pods(self, namespace: str, selector: str, cached: bool = False) -> list[dict[str, Any]]:
        """``cached``: as the API server's watch cache has them, which may be a moment behind
        (``resourceVersion=0``); else a consistent list."""
        query = {"labelSelector": selector} | ({"resourceVersion": "0"} if cached else {})
        out = await self.call("GET", f"/api/v1/namespaces/{namespace}/pods", query=query)
        return out["items"]
