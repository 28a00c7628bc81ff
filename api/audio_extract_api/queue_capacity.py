"""QUEUE_FULL admission: how many jobs wait in ``queued``, and who may add more.

The count comes from the ExtractionBatch objects themselves (no second source of truth): a
background task lists them once and then follows a watch, keeping ``name → queued jobs``. A
batch the operator has not seen yet counts every job as queued.

Admission is check-and-reserve with no ``await`` in between, so within one process (one event
loop) it is exact: under any number of concurrent submissions the queue never exceeds the
capacity. A reservation stands for a batch this process is creating or has created but the
watch has not delivered yet; it is dropped when the watch shows that batch (its jobs are then
counted from the object), when the create fails, or after ``RESERVATION_TTL`` as a safety net.

Several processes (uvicorn workers or API replicas) each hold their own view and only learn of
each other's batches through the watch, typically within tens of milliseconds. Worst case, all
R processes admit against the same stale count, so the queue can reach R x capacity: the
overshoot is bounded by (R - 1) x capacity, and in practice by the jobs the other processes
admit within one watch delay. A ResourceQuota ``count/extractionbatches.audioextract.io`` in
the namespace is the cluster-wide hard backstop if an exact global bound is required.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from audio_extract_common.kube import WatchExpired

from .errors import ApiError, QueueFull, ServiceUnavailable
from .kube import Kube

log = logging.getLogger(__name__)

RESERVATION_TTL = 120.0
"""Seconds after which a reservation the watch never confirmed is dropped (a lost event)."""


def queued_jobs(obj: dict[str, Any]) -> int:
    spec = obj.get("spec") or {}
    entries = (obj.get("status") or {}).get("jobs") or []
    if not entries:
        return len(spec.get("jobs") or [])
    return sum(1 for j in entries if (j.get("status") or "queued") == "queued")


class QueueView:
    def __init__(self, kube: Kube, capacity: int, retry_after: int, sync_timeout: float) -> None:
        self.kube = kube
        self.capacity = capacity
        self.retry_after = retry_after
        self.sync_timeout = sync_timeout
        self.counts: dict[str, int] = {}
        self.reserved: dict[str, tuple[int, float]] = {}
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- the view ---------------------------------------------------------------------------

    def queued(self) -> int:
        now = time.monotonic()
        for name, (_, at) in list(self.reserved.items()):
            if now - at > RESERVATION_TTL:
                del self.reserved[name]
        return sum(self.counts.values()) + sum(n for n, _ in self.reserved.values())

    def _apply(self, obj: dict[str, Any], deleted: bool = False) -> None:
        name = obj["metadata"]["name"]
        self.reserved.pop(name, None)
        if deleted:
            self.counts.pop(name, None)
        else:
            self.counts[name] = queued_jobs(obj)

    async def _follow(self) -> None:
        backoff = 0.5
        while True:
            try:
                items, rv = await self.kube.list()
                self.counts = {}
                for obj in items:
                    self._apply(obj)
                self._synced.set()
                backoff = 0.5
                while True:
                    async for event in self.kube.watch(rv):
                        obj = event.get("object") or {}
                        rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                        if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                            self._apply(obj, deleted=event["type"] == "DELETED")
            except WatchExpired:
                continue
            except asyncio.CancelledError:
                raise
            except (ApiError, Exception) as e:  # keep following whatever happens
                log.warning("queue watch interrupted (%r); relisting in %.1fs", e, backoff)
                self._synced.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    def start(self) -> None:
        if self._task is None:
            # Started by the first submission, but the process's, not that request's: a context
            # of its own, so its log lines name no tenant or batch and its waits time no request.
            self._task = asyncio.get_running_loop().create_task(
                self._follow(), name="queue-watch", context=contextvars.Context()
            )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def ready(self) -> None:
        self.start()
        if not self._synced.is_set():
            try:
                await asyncio.wait_for(self._synced.wait(), self.sync_timeout)
            except TimeoutError:
                raise ServiceUnavailable(headers={"Retry-After": "5"}) from None

    # --- admission --------------------------------------------------------------------------

    def shed(self, jobs: int) -> None:
        """Refuse at once, before the checks that cost a lookup or a store call, a batch that
        cannot fit: under overload refusals then stay cheap and leave the CPU to admitted work.
        (A replay of an existing batch is answered before this: it needs no room.) ``admit``
        checks again, exactly, and reserves."""
        if self._synced.is_set() and self.queued() + jobs > self.capacity:
            raise QueueFull(headers={"Retry-After": str(self.retry_after)})

    @contextlib.asynccontextmanager
    async def admit(self, name: str, jobs: int) -> AsyncIterator[int]:
        """Reserve room for ``jobs`` queued jobs, or raise QUEUE_FULL. Yields the count ahead."""
        await self.ready()
        # No await between the check and the reservation: atomic within this event loop.
        ahead = self.queued()
        if ahead + jobs > self.capacity:
            raise QueueFull(headers={"Retry-After": str(self.retry_after)})
        self.reserved[name] = (jobs, time.monotonic())
        try:
            yield ahead
        except BaseException:
            self.reserved.pop(name, None)
            raise
