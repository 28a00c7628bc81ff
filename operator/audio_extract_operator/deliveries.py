"""Integration point with the webhooks package: where deliveries are created and driven.

The webhook driver (``webhooks.driver.Driver``) plans a delivery from status the first time a job
(or the batch) is terminal and records it in ``JobStatus.webhook`` / ``BatchStatus.webhook``, then
sends what is due. The operator calls into it from three places:

- ``on_job_terminal`` / ``on_batch_complete``: a status write made a job (or the batch) terminal —
  wakes the drive loop so the first attempt goes out at once;
- ``drive``: the operator's delivery loop calls it every ``webhook_poll_interval`` seconds; it
  ticks every batch that owes or has pending deliveries;
- ``forget``: a batch was deleted.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from audio_extract_common.resource import BatchSpec, BatchStatus

from .kube import Kube, batch_path
from .registry import Registry
from .settings import Settings
from .webhooks.driver import BatchRef, Driver, needs_work

log = logging.getLogger(__name__)
JSON_PATCH = "application/json-patch+json"


class Deliveries:
    def __init__(self, settings: Settings, kube: Kube, registry: Registry) -> None:
        self.kube = kube
        self.registry = registry
        self.driver = Driver(settings.webhook_config(), self._patch_status)
        self.wake = asyncio.Event()

    async def _patch_status(self, namespace: str, name: str, ops: list[dict[str, Any]]) -> None:
        await self.kube.call("PATCH", batch_path(namespace, name, "status"), ops, content_type=JSON_PATCH)

    def on_job_terminal(self, namespace: str, name: str, index: int) -> None:
        self.wake.set()

    def on_batch_complete(self, namespace: str, name: str) -> None:
        self.wake.set()

    def forget(self, uid: str) -> None:
        self.driver.forget(uid)

    async def drive(self) -> None:
        """One pass over the batches that owe deliveries."""
        if not self.driver.enabled:
            return
        ticks = []
        for (ns, name), body in list(self.registry.batches.items()):
            spec, status = body.get("spec") or {}, body.get("status") or {}
            if not needs_work(spec, status):
                continue
            ref = BatchRef(ns, name, body["metadata"]["uid"])
            ticks.append(self.driver.tick(ref, BatchSpec.model_validate(spec), BatchStatus.model_validate(status)))
        for result in await asyncio.gather(*ticks, return_exceptions=True):
            if isinstance(result, Exception):
                log.warning("webhook delivery pass failed: %s", result)

    async def aclose(self) -> None:
        await self.driver.aclose()
