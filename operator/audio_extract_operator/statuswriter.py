"""The one way the operator writes a batch's status: read, change, write with a resourceVersion
precondition, retry on conflict. Serialized per batch inside the process, so handlers, the
admission loop and the progress endpoint never overwrite each other's changes; the precondition
covers the other writers (kopf's annotations, the webhook driver's JSON patches).

Every write recomputes counts, phase and conditions, stamps expiry times, and posts an Event per
job/batch transition. The written object goes to ``listeners`` (the registry, the webhook pump)
at once: a job that just ended has its webhook sent without waiting for the watch to echo the
write back, which under load takes seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import timedelta
from typing import Any

from audio_extract_common.batch_status import TERMINAL_STATES, BatchStatus, JobState, Phase
from audio_extract_common.kube import Conflict, NotFound
from audio_extract_common.timefmt import iso, now, parse

from . import k8sevents, metrics
from .kube import Kube
from .mapping import summarize
from .registry import Registry
from .settings import Settings

log = logging.getLogger(__name__)

Change = Callable[[dict[str, Any], BatchStatus], BatchStatus | None]
"""``(batch body, current status) -> new status``, or None for "nothing to change"."""

CONFLICT_RETRIES = 8


def stamp_expiry(status: BatchStatus, retention_seconds: int) -> BatchStatus:
    """Completed outputs get ``expiresAt`` = completion + retention (the API shows it)."""
    for job in status.jobs:
        if job.status == JobState.completed and job.expiresAt is None and job.completedAt:
            job.expiresAt = iso(parse(job.completedAt) + timedelta(seconds=retention_seconds))
    return status


def transitions(old: BatchStatus, new: BatchStatus) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the Events a change deserves."""
    out = []
    before = {j.index: j for j in old.jobs}
    for j in new.jobs:
        prev = before.get(j.index)
        if prev is None or prev.status == j.status:
            continue
        if j.status == JobState.processing:
            out.append(("Normal", "JobStarted", f"{j.jobId} admitted ({j.jobName})"))
        elif j.status == JobState.completed:
            out.append(("Normal", "JobCompleted", f"{j.jobId} completed"))
        elif j.status == JobState.failed:
            code = j.error.code if j.error else "INTERNAL_ERROR"
            out.append(
                ("Warning", "JobFailed", f"{j.jobId} failed: {code}: {j.error.message if j.error else ''}")
            )
        elif j.status == JobState.cancelled:
            out.append(("Normal", "JobCancelled", f"{j.jobId} cancelled"))
    if old.phase != new.phase and new.phase in (Phase.Succeeded, Phase.Failed):
        out.append(
            (
                "Normal" if new.phase == Phase.Succeeded else "Warning",
                f"Batch{new.phase}",
                f"{new.completed}/{new.total} completed, {new.failed} failed or cancelled",
            )
        )
    return out


class StatusWriter:
    def __init__(self, kube: Kube, settings: Settings, registry: Registry) -> None:
        self.kube = kube
        self.settings = settings
        self.registry = registry
        self.listeners: list[Callable[[Mapping[str, Any]], None]] = [registry.observe_batch]
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, list[int]]] = {}
        """Per batch being written: its lock and how many writers hold or wait for it."""

    @contextlib.asynccontextmanager
    async def _locked(self, namespace: str, name: str) -> AsyncIterator[None]:
        # A lock exists only while someone holds or waits for it: one per batch ever written
        # would grow with every retained batch.
        ref = (namespace, name)
        lock, users = self._locks.setdefault(ref, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0 and self._locks.get(ref, (None,))[0] is lock:
                del self._locks[ref]

    async def update(self, namespace: str, name: str, change: Change) -> BatchStatus | None:
        """Apply ``change`` to the batch's current status; None when the batch is gone."""
        async with self._locked(namespace, name):
            for _ in range(CONFLICT_RETRIES):
                try:
                    body = await self.kube.get_batch(namespace, name)
                except NotFound:
                    return None
                current = BatchStatus.model_validate(body.get("status") or {})
                changed = change(body, current.model_copy(deep=True))
                if changed is None:
                    return current
                at = iso(now())
                new = summarize(changed, at, body["metadata"].get("generation"))
                new = stamp_expiry(new, self.settings.retention.output_seconds)
                if new == current:
                    return current
                try:
                    written = await self.kube.patch_batch_status(
                        namespace,
                        name,
                        new.model_dump(mode="json", exclude_none=True),
                        body["metadata"]["resourceVersion"],
                    )
                except Conflict:
                    continue
                except NotFound:
                    return None
                for listen in self.listeners:
                    listen(written)
                metrics.status_written(written, current, new)
                # at once: a write that admits or ends ten jobs deserves ten Events
                events = transitions(current, new)
                await asyncio.gather(*(k8sevents.post(self.kube, written, *event) for event in events))
                return new
            raise Conflict(409, "Conflict", f"status of {namespace}/{name} kept changing; will retry")


def terminal(status: BatchStatus, index: int) -> bool:
    return any(j.index == index and j.status in TERMINAL_STATES for j in status.jobs)
