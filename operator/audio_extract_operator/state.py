"""The operator process's state: one ``OperatorState``, made at start-up and kept in kopf's memo as
``memo.state``, which every handler reads and clean-up closes. The leader has one; a standby none.
"""

from __future__ import annotations

import asyncio
import contextlib

from audio_extract_common.storage import Storage, VolumeStorage

from .kube import Kube
from .progress import Progress
from .readiness import Readiness
from .reconcile import Reconciler
from .registry import Registry
from .settings import Settings
from .statuswriter import StatusWriter
from .webhooks.pump import Pump


class OperatorState:
    """The clients, books and tasks of one operating process.

    ``storage``: the store opened at start-up; without one, a volume's is made here (a directory
    needs no opening). ``readiness``: what ``/readyz`` answers from, None where nothing probes it.
    ``webhooks``: the delivery pump once ``deliveries.install`` has started it. ``tasks``: the loops,
    cancelled at ``close``. ``closing``: what was opened for the process (the store's client pool),
    closed last."""

    def __init__(
        self,
        settings: Settings,
        kube: Kube,
        storage: Storage | None = None,
        readiness: Readiness | None = None,
    ) -> None:
        self.settings = settings
        self.kube = kube
        root = settings.store.volume_root
        self.storage = storage if storage is not None or root is None else VolumeStorage(root)
        self.registry = Registry()
        self.writer = StatusWriter(kube, settings, self.registry)
        self.reconciler = Reconciler(kube, settings, self.registry, self.writer, self.storage)
        self.progress = Progress(settings, self.registry, self.writer, readiness)
        self.webhooks: Pump | None = None
        self.webhooks_task: asyncio.Task[None] | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.closing = contextlib.AsyncExitStack()

    async def close(self) -> None:
        """Stop the loops, the progress endpoint and the deliveries, then close the clients."""
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.progress.stop()
        if self.webhooks_task is not None:
            self.webhooks_task.cancel()
            await asyncio.gather(self.webhooks_task, return_exceptions=True)
        if self.webhooks is not None:
            await self.webhooks.aclose()
        await self.kube.close()
        await self.closing.aclose()
