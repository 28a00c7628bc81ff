"""Driving deliveries from the operator: plan what a batch owes, send what is due, record outcomes.

The resource's status is the durable record (``status.jobs[i].webhook`` and ``status.webhook``).
One ``tick`` per batch, called repeatedly (by ``pump.Pump``, never twice at once for a batch), does:

1. *Plan*: deliveries owed (terminal job with a target, or a finished batch with a batch
   webhook) but not recorded yet get a pending record with a deterministic ``webhook-id``.
2. *Send*: every due pending delivery gets one attempt (concurrently, under a process-wide
   bound), then its new state is written with one JSON patch per batch. The record is written
   **after** the attempt: a crash in between means the event is sent again with the same id
   (at least once; receivers deduplicate on ``webhook-id``), never lost and never invented.

Writes are JSON patches on exactly the ``webhook`` paths, guarded by ``test`` ops on the
object's uid and each entry's ``jobId``, so they never touch what the rest of the operator
writes. This process remembers what it wrote until the watch shows it back: a tick that sees an
older record (a stale view, or another status write that carried an old copy) re-writes the
remembered state instead of sending again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from audio_extract_common.batch_spec import BatchSpec
from audio_extract_common.batch_status import TERMINAL_STATES, BatchStatus, Delivery
from audio_extract_common.timefmt import iso

from .. import logs, metrics
from . import events
from .config import WebhookSettings
from .policy import Schedule, is_due, next_state
from .send import Sender

log = logging.getLogger(__name__)

Slot = int | None
"""A job's index, or None for the batch's own ``batch.completed``."""

PatchStatus = Callable[[str, str, list[dict[str, Any]]], Awaitable[None]]
"""``(namespace, name, json_patch_ops)``: apply a JSON patch to the batch's status subresource."""


@dataclass(frozen=True)
class BatchRef:
    namespace: str
    name: str
    uid: str


def _progress(d: Delivery) -> tuple[int, int]:
    return (0 if d.state == "pending" else 1, d.attempts)


def fresher(seen: Delivery | None, mine: Delivery | None) -> Delivery | None:
    """The more advanced of the recorded and the remembered state of one event."""
    if mine is None or (seen is not None and (seen.id != mine.id or _progress(seen) >= _progress(mine))):
        return seen
    return mine


def recorded(status: BatchStatus) -> dict[Slot, Delivery]:
    out: dict[Slot, Delivery] = {j.index: j.webhook for j in status.jobs if j.webhook is not None}
    if status.webhook is not None:
        out[None] = status.webhook
    return out


def patch_ops(uid: str, status: BatchStatus, writes: Mapping[Slot, Delivery]) -> list[dict[str, Any]]:
    """JSON patch writing ``writes`` into status, guarded so it lands on the entries it means."""
    ops: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/uid", "value": uid}]
    position = {j.index: pos for pos, j in enumerate(status.jobs)}
    for slot, d in sorted(writes.items(), key=lambda kv: -1 if kv[0] is None else kv[0]):
        value = d.model_dump(mode="json", exclude_none=True)
        if slot is None:
            ops.append({"op": "add", "path": "/status/webhook", "value": value})
        else:
            pos = position[slot]
            ops.append({"op": "test", "path": f"/status/jobs/{pos}/jobId", "value": status.jobs[pos].jobId})
            ops.append({"op": "add", "path": f"/status/jobs/{pos}/webhook", "value": value})
    return ops


def needs_work(spec: Mapping[str, Any], status: Mapping[str, Any], now: str | None = None) -> bool:
    """Cheap test on raw dicts: does this batch owe a delivery not yet recorded, or have a pending
    one (with ``now``, an ISO time: a pending one that is due)?"""

    def active(hook: Mapping[str, Any] | None) -> bool:
        if hook is None or hook.get("state") != "pending":
            return False
        due_at = hook.get("nextAttemptAt")
        return now is None or due_at is None or due_at <= now  # ISO 8601 "Z" strings sort by time

    jobs = status.get("jobs") or []
    spec_jobs = spec.get("jobs") or []
    batch_hook = spec.get("webhook")
    terminal = [j.get("status") in TERMINAL_STATES for j in jobs]
    for j, done in zip(jobs, terminal, strict=True):
        hook = j.get("webhook")
        if hook is not None:
            if active(hook):
                return True
        elif done:
            i = j.get("index", -1)
            own = ((spec_jobs[i].get("options") or {}).get("webhook")) if 0 <= i < len(spec_jobs) else None
            if own or batch_hook:
                return True
    if batch_hook and jobs and all(terminal):
        hook = status.get("webhook")
        return hook is None or active(hook)
    return False


class Driver:
    """One per operator process (kept in kopf's memo): the sender, the bound and the memory."""

    def __init__(
        self,
        config: WebhookSettings,
        patch: PatchStatus,
        sender: Sender | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        after_attempts: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.enabled = bool(config.secret.get_secret_value())
        self.patch = patch
        self.sender = sender if sender is not None else (Sender(config) if self.enabled else None)
        self.schedule = Schedule.from_config(config)
        self.clock = clock
        self.after_attempts = after_attempts
        """Called after a round of attempts, before their outcomes are recorded (a fault point)."""
        self._bound = asyncio.Semaphore(config.concurrency)
        self._memory: dict[str, dict[Slot, Delivery]] = {}
        """uid -> outcomes written (or failed to be written) by this process, until status shows them."""
        self.unwritten: set[str] = set()
        """uids whose last status write failed: their outcomes live only in ``_memory``."""
        self.sent_total = 0

    async def aclose(self) -> None:
        if self.sender is not None:
            await self.sender.aclose()

    def wants_tick(self, uid: str, spec: Mapping[str, Any], status: Mapping[str, Any], now: str) -> bool:
        """Anything to plan, send or re-record for this batch right now?"""
        return uid in self.unwritten or needs_work(spec, status, now)

    def remembers(self, uid: str) -> bool:
        """Outcomes of this batch's attempts are known here but not yet written."""
        return uid in self.unwritten

    def forget(self, uid: str) -> None:
        """Drop what is remembered of a batch (deleted, or nothing left to deliver)."""
        self._memory.pop(uid, None)
        self.unwritten.discard(uid)

    async def tick(self, ref: BatchRef, spec: BatchSpec, status: BatchStatus) -> None:
        if not self.enabled:
            return
        now = self.clock()
        current: dict[Slot, Delivery] = {}
        writes: dict[Slot, Delivery] = {}
        memory = self._memory.setdefault(ref.uid, {})
        for slot, seen in recorded(status).items():
            best = fresher(seen, memory.get(slot)) or seen  # never None: seen is a delivery
            if best is seen:
                memory.pop(slot, None)  # the view caught up with what was written
            else:
                writes[slot] = best  # an older copy came back: restore, do not resend
            current[slot] = best
        fresh = status.model_copy(deep=True)
        for j in fresh.jobs:
            j.webhook = current.get(j.index)
        fresh.webhook = current.get(None)
        for p in events.plan(spec, fresh, ref.uid, iso(now)):
            current[p.index] = memory.get(p.index) or p.delivery
            if current[p.index] is not p.delivery:
                writes[p.index] = current[p.index]

        due = [slot for slot, d in current.items() if is_due(d, now)]
        # Not due yet and never written (only if the first attempt is deferred): record the plan.
        for slot, d in current.items():
            if slot not in due and (slot not in recorded(status)) and slot not in writes:
                writes[slot] = d
        if due:
            results = await asyncio.gather(*(self._attempt(fresh, slot, current[slot]) for slot in due))
            if self.after_attempts is not None:
                self.after_attempts()
            for slot, d in zip(due, results, strict=True):
                writes[slot] = d
                memory[slot] = d
        if writes:
            await self._write(ref, status, writes)
        elif not memory:
            # status shows all that was written: a write reported failed had been applied after all
            self.unwritten.discard(ref.uid)
        if not memory:
            self._memory.pop(ref.uid, None)

    async def _attempt(self, status: BatchStatus, slot: Slot, d: Delivery) -> Delivery:
        assert self.sender is not None
        body = events.body_for(status, slot, d, self.config.public_prefix)
        async with self._bound:
            outcome = await self.sender.attempt(d, body)
        self.sent_total += 1
        new = next_state(d, outcome, self.clock(), self.schedule)
        metrics.delivery_attempted(d, new, logs.tenant.get())  # the tick's task knows its tenant
        log.info(
            "webhook %s %s to %s: attempt %d -> %s (%s)",
            d.id,
            d.event,
            d.url,
            new.attempts,
            new.state,
            outcome.status_code if outcome.status_code is not None else outcome.error,
        )
        return new

    async def _write(self, ref: BatchRef, status: BatchStatus, writes: Mapping[Slot, Delivery]) -> None:
        try:
            await self.patch(ref.namespace, ref.name, patch_ops(ref.uid, status, writes))
        except Exception as e:  # kept in memory; the next tick writes it again
            self.unwritten.add(ref.uid)
            log.warning("recording webhook deliveries of %s/%s failed: %s", ref.namespace, ref.name, e)
        else:
            self.unwritten.discard(ref.uid)
