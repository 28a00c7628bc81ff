"""STORE_FULL: new work is refused while the store has less free space than a set margin
(docs/contract.md §7).

A full store fails every job that writes its output then, whoever submitted it. Refusing new
uploads and submissions with 503 STORE_FULL and Retry-After instead keeps the margin for the work
already accepted, and clients retry once retention has freed space. Reads (status, downloads)
go on.

Free space is the store's statvfs (what an unprivileged writer may still use), measured in a
worker thread: on network storage a statvfs can take long and must not hold the event loop. An
object store has no free space to tell (a bucket has no fixed size): nothing is refused there,
and the gauge is not set. A measurement is reused for ``REUSE_SECONDS``, so a burst of
submissions costs one, and one is taken every ``GAUGE_SECONDS`` in the background, so the
free-space gauge stays current when nobody submits (scrapes of /metrics never wait on the store).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time

from audio_extract_common.storage import Storage

from .errors import ApiError, StoreFull
from .metrics import Metrics

log = logging.getLogger(__name__)

REUSE_SECONDS = 1.0
"""How old a measurement may be when a request is checked: far less than any store fills in."""
GAUGE_SECONDS = 15.0
"""How often the gauge is refreshed without requests: Prometheus scrapes every 15-60 s."""


class StoreSpace:
    def __init__(self, store: Storage, min_free: int, retry_after: int, metrics: Metrics) -> None:
        self.store = store
        self.min_free = min_free
        self.retry_after = retry_after
        self.metrics = metrics
        self._free: int | None = 0
        self._measured_at = -math.inf
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def free(self, max_age: float = REUSE_SECONDS) -> int | None:
        """Free bytes, measured at most ``max_age`` seconds ago; None: the store has no known limit."""
        async with self._lock:  # one measurement at a time; the others reuse it
            if time.monotonic() - self._measured_at >= max_age:
                self._free = await self.store.free_bytes()
                self._measured_at = time.monotonic()
                if self._free is not None:
                    self.metrics.store_free.set(self._free)
        return self._free

    async def check(self, operation: str, incoming: int = 0) -> None:
        """Raise STORE_FULL unless ``incoming`` more bytes leave the margin free."""
        free = await self.free()
        if free is not None and free - incoming < self.min_free:
            log.warning(
                "%s refused: the store has %d bytes free, %d more asked, %d kept free",
                operation,
                free,
                incoming,
                self.min_free,
            )
            raise self.refusal(operation)

    def refusal(self, operation: str) -> ApiError:
        """STORE_FULL for ``operation``, counted (also for a store that filled up under a write)."""
        self.metrics.store_full.labels(operation).inc()
        return StoreFull(headers={"Retry-After": str(self.retry_after)})

    async def _refresh(self) -> None:
        while True:
            try:
                if await self.free(max_age=0) is None:
                    return  # nothing to measure, now or later
            except OSError as e:  # a store briefly unavailable: the next round tries again
                log.warning("cannot measure the store's free space: %s", e)
            await asyncio.sleep(GAUGE_SECONDS)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._refresh(), name="store-space")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
