"""The one way the operator writes a batch's status: read, change, write with a resourceVersion
precondition, retry on conflict. Serialized per batch inside the process, so handlers, the
admission loop and the progress endpoint never overwrite each other's changes; the precondition
covers the other writers (kopf's annotations, the webhook driver's JSON patches, the API).

Two things keep the requests per job low under load, where the API server is what runs out first:

- *One write for what waits*: changes to a batch queue while its write is under way and the next
  write applies them all (ten jobs of a batch ending together cost one write, not ten).
- *No read before a write* when this process knows the batch's latest object: the one it wrote
  last, or a newer one the watch or the webhook driver's writes showed. The precondition makes a
  stale copy harmless: the write fails with Conflict, and is retried after a read. Copies are
  kept for batches not finished only, so they are bounded by the work in flight.

Every write recomputes counts, phase and conditions, stamps expiry times, and posts the Events of
its transitions (one per kind of job transition, naming the jobs; one per failed job). The
written object goes to ``listeners`` (the registry, the webhook pump) at once: a job that just
ended has its webhook sent without waiting for the watch to echo the write back, which under load
takes seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from audio_extract_common.batch_status import TERMINAL_STATES, BatchStatus, JobState, JobStatus, Phase
from audio_extract_common.keyed_locks import KeyedLocks
from audio_extract_common.kube import Conflict, NotFound
from audio_extract_common.timefmt import iso, now, parse

from . import k8sevents, metrics
from .kube import Kube, resource_version
from .mapping import summarize
from .registry import Ref, Registry
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


def _named(jobs: list[JobStatus], verb: str) -> str:
    if len(jobs) == 1:
        return f"{jobs[0].jobId} {verb}"
    return f"{len(jobs)} jobs {verb}: " + ", ".join(j.jobId for j in jobs)


def transitions(old: BatchStatus, new: BatchStatus) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the Events a change deserves: one per kind of job transition,
    naming its jobs (a batch admitted at once is one Event, not ten), and one per failed job, which
    says why."""
    out = []
    before = {j.index: j for j in old.jobs}
    moved: dict[JobState, list[JobStatus]] = {}
    for j in new.jobs:
        prev = before.get(j.index)
        if prev is not None and prev.status != j.status:
            moved.setdefault(j.status, []).append(j)
    if started := moved.get(JobState.processing):
        out.append(("Normal", "JobStarted", _named(started, "admitted")))
    if completed := moved.get(JobState.completed):
        out.append(("Normal", "JobCompleted", _named(completed, "completed")))
    for j in moved.get(JobState.failed, []):
        code = j.error.code if j.error else "INTERNAL_ERROR"
        out.append(
            ("Warning", "JobFailed", f"{j.jobId} failed: {code}: {j.error.message if j.error else ''}")
        )
    if cancelled := moved.get(JobState.cancelled):
        out.append(("Normal", "JobCancelled", _named(cancelled, "cancelled")))
    if old.phase != new.phase and new.phase in (Phase.Succeeded, Phase.Failed):
        out.append(
            (
                "Normal" if new.phase == Phase.Succeeded else "Warning",
                f"Batch{new.phase}",
                f"{new.completed}/{new.total} completed, {new.failed} failed or cancelled",
            )
        )
    return out


@dataclass
class _Waiting:
    change: Change
    fresh: bool
    done: asyncio.Future[BatchStatus | None]


class StatusWriter:
    def __init__(self, kube: Kube, settings: Settings, registry: Registry) -> None:
        self.kube = kube
        self.settings = settings
        self.registry = registry
        self.listeners: list[Callable[[Mapping[str, Any]], None]] = [registry.observe_batch]
        self._locks: KeyedLocks[Ref] = KeyedLocks()
        """Per batch being written: its writers take turns."""
        self._waiting: dict[Ref, list[_Waiting]] = {}
        """Per batch: the changes not written yet, in the order they came."""
        self._latest: dict[Ref, dict[str, Any]] = {}
        """Per unfinished batch: the newest object this process knows (see the module's text)."""

    def observe(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        """A batch's object as the watch or another writer of ours saw it."""
        meta = body.get("metadata") or {}
        ref = (meta.get("namespace", ""), meta.get("name", ""))
        if deleted:
            self._latest.pop(ref, None)
            return
        known = self._latest.get(ref)
        if known is None or resource_version(body) > resource_version(known):
            self._remember(ref, body)

    def _remember(self, ref: Ref, body: Mapping[str, Any]) -> None:
        if (body.get("status") or {}).get("phase") in (Phase.Succeeded, Phase.Failed):
            self._latest.pop(ref, None)
        else:
            self._latest[ref] = dict(body)

    async def update(
        self, namespace: str, name: str, change: Change, fresh: bool = False
    ) -> BatchStatus | None:
        """Apply ``change`` to the batch's current status; None when the batch is gone. What it
        returns is the status written (or found) with every change written together with it.

        ``fresh``: read the object first even if a copy is known. For a change that decides
        something beyond the write from the object (the precondition checks only what is written:
        a change that writes nothing may have looked at a stale copy)."""
        ref = (namespace, name)
        mine = _Waiting(change, fresh, asyncio.get_running_loop().create_future())
        self._waiting.setdefault(ref, []).append(mine)
        events: list[tuple[Mapping[str, Any], str, str, str]] = []
        async with self._locks.hold(ref):
            if not mine.done.done():  # else an earlier writer took it along
                waiting = self._waiting.pop(ref)
                try:
                    written = await self._write(ref, waiting, events)
                except Exception as e:
                    for w in waiting:
                        if w is not mine:
                            w.done.set_exception(e)
                    raise
                except BaseException:  # cancelled: the others' changes wait for the next writer
                    self._waiting[ref] = [w for w in waiting if w is not mine] + self._waiting.get(ref, [])
                    raise
                for w in waiting:
                    w.done.set_result(written)
        # After the lock: the next write of the batch need not wait for them.
        await asyncio.gather(*(k8sevents.post(self.kube, *event) for event in events))
        return mine.done.result()

    async def _write(
        self, ref: Ref, waiting: list[_Waiting], events: list[tuple[Mapping[str, Any], str, str, str]]
    ) -> BatchStatus | None:
        """One write of the waiting changes; the Events it deserves go to ``events``."""
        namespace, name = ref
        body = None if any(w.fresh for w in waiting) else self._latest.get(ref)
        for _ in range(CONFLICT_RETRIES):
            if body is None:
                try:
                    body = await self.kube.get_batch(namespace, name)
                except NotFound:
                    self._latest.pop(ref, None)
                    return None
            current = BatchStatus.model_validate(body.get("status") or {})
            changed = current
            for w in waiting:
                changed = w.change(body, changed.model_copy(deep=True)) or changed
            if changed is current:
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
                body = None
                continue
            except NotFound:
                self._latest.pop(ref, None)
                return None
            self._remember(ref, written)
            for listen in self.listeners:
                listen(written)
            metrics.status_written(written, current, new)
            events.extend((written, *event) for event in transitions(current, new))
            return new
        raise Conflict(409, "Conflict", f"status of {namespace}/{name} kept changing; will retry")


def terminal(status: BatchStatus, index: int) -> bool:
    return any(j.index == index and j.status in TERMINAL_STATES for j in status.jobs)
