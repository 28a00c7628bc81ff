"""The operator side of deliveries: one loop that ticks the Driver for every batch that owes webhooks.

The operator feeds every batch it sees (each kopf watch event, and the objects its own writes
return) to ``observe``; batches that owe or have a pending delivery are *active*. The loop wakes
on such an event or every ``poll_interval`` (for retries coming due), and starts one tick task per
active batch that has something to do, never two for the same batch at once, so a delivery is
never attempted twice concurrently. Ticks run as their own tasks: a slow receiver holds only its
own batch, never the loop or other batches (the Driver bounds attempts in flight across all).

Why not a kopf daemon or timer per batch: kopf puts a finalizer on every object a daemon or timer
matches and takes it off when it stops matching, two extra writes per batch (and a batch that
cannot be deleted while the operator is down); timers also log every run. After a restart, kopf's
initial listing passes through ``observe`` like any event, which is how pending deliveries resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from audio_extract_common.batch_spec import BatchSpec
from audio_extract_common.batch_status import BatchStatus
from audio_extract_common.timefmt import iso

from .. import logs, metrics
from ..kube import resource_version
from .config import WebhookSettings
from .driver import BatchRef, Driver, needs_work

log = logging.getLogger(__name__)

PatchReturning = Callable[[str, str, list[dict[str, Any]]], Awaitable[Mapping[str, Any] | None]]
"""``(namespace, name, json_patch_ops) -> the written object`` (None if unknown)."""


class Pump:
    def __init__(self, config: WebhookSettings, patch: PatchReturning, driver: Driver | None = None) -> None:
        self._patch_raw = patch
        self.driver = driver or Driver(config, self._patch)
        self.config = config
        self.bodies: dict[str, dict[str, Any]] = {}
        """uid -> latest known body of an active batch."""
        self.ticking: dict[str, asyncio.Task[None]] = {}
        self.versions: dict[str, int] = {}
        """uid -> newest resourceVersion seen of every batch, active or not, until it is deleted."""
        self.not_before: dict[str, float] = {}
        """uid -> loop time before which a batch whose last write failed is not ticked again."""
        self.wake = asyncio.Event()
        self.ticks = 0

    async def _patch(self, namespace: str, name: str, ops: list[dict[str, Any]]) -> None:
        written = await self._patch_raw(namespace, name, ops)
        if written:
            self.observe(written)

    def observe(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        """Every batch event (and write result) goes through here; cheap for inactive batches."""
        meta = body.get("metadata") or {}
        uid = meta.get("uid")
        if not uid or not self.driver.enabled:
            return
        if deleted:
            self.bodies.pop(uid, None)
            self.versions.pop(uid, None)
            self.not_before.pop(uid, None)
            self.driver.forget(uid)
            return
        rv = resource_version(body)
        if rv < self.versions.get(uid, 0):
            # A stale copy: the watch echoes writes (ours, the status writer's) late. Kept for
            # quiet batches too: a late copy from before the deliveries were recorded would
            # otherwise look like deliveries still owed, and send them again.
            return
        self.versions[uid] = rv
        try:
            spec, status = body.get("spec") or {}, body.get("status") or {}
            active = self.driver.remembers(uid) or needs_work(spec, status)
        except Exception:  # never let an odd object break the operator's event handler
            log.exception(
                "webhook check of %s failed", meta.get("name"), extra={"tenant": logs.tenant_of(body)}
            )
            return
        if active:
            self.bodies[uid] = {
                "metadata": dict(meta),
                "spec": body.get("spec"),
                "status": body.get("status"),
            }
            self.wake.set()
        else:  # nothing owed or pending: done with this batch (memory included) until it changes
            self.bodies.pop(uid, None)
            self.driver.forget(uid)

    async def run(self) -> None:
        while True:
            self.wake.clear()
            try:
                self._start_due()
            except Exception:  # the loop must survive anything a body could trigger
                log.exception("webhook pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=self.config.poll_interval)

    def _start_due(self) -> None:
        now = iso(self.driver.clock())
        loop_now = asyncio.get_running_loop().time()
        for uid, body in list(self.bodies.items()):
            if uid in self.ticking or self.not_before.get(uid, 0.0) > loop_now:
                continue
            spec, status = body.get("spec") or {}, body.get("status") or {}
            try:
                if not self.driver.wants_tick(uid, spec, status, now):
                    continue
            except Exception:  # one odd object must not stall every other batch
                log.exception(
                    "webhook check of %s failed",
                    body["metadata"].get("name"),
                    extra={"tenant": logs.tenant_of(body)},
                )
                continue
            task = asyncio.create_task(self._tick(uid, body), name=f"webhooks {uid}")
            self.ticking[uid] = task

    async def _tick(self, uid: str, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        logs.set_about(logs.tenant_of(body), logs.batch_id_of(body))  # this task's lines, its attempts
        try:
            self.ticks += 1
            await self.driver.tick(
                BatchRef(meta["namespace"], meta["name"], uid),
                BatchSpec.model_validate(body.get("spec") or {}),
                BatchStatus.model_validate(body.get("status") or {}),
            )
        except asyncio.CancelledError:
            raise
        except Exception:  # logged; the batch stays active and the next pass tries again
            metrics.reconcile_error("webhook")
            log.exception("webhook tick for %s/%s failed", meta["namespace"], meta["name"])
        finally:
            self.ticking.pop(uid, None)
            if uid not in self.bodies:  # deleted (or finished) while this tick ran
                self.driver.forget(uid)
                self.not_before.pop(uid, None)
            elif self.driver.remembers(uid):  # the write failed: retry it after a pause, not at once
                self.not_before[uid] = asyncio.get_running_loop().time() + self.config.poll_interval
            else:
                self.not_before.pop(uid, None)
                self._drop_if_done(uid)

    def _drop_if_done(self, uid: str) -> None:
        """Usually the written object's ``observe`` ends an active batch; after a write that was
        applied but reported failed, the watch showed it while the driver still remembered it,
        and no other event may come before the batch's deletion."""
        body = self.bodies[uid]
        try:
            done = not needs_work(body.get("spec") or {}, body.get("status") or {})
        except Exception:  # an odd object: the pass logs it
            return
        if done:
            del self.bodies[uid]
            self.driver.forget(uid)

    async def aclose(self) -> None:
        for task in list(self.ticking.values()):
            task.cancel()
        await asyncio.gather(*self.ticking.values(), return_exceptions=True)
        await self.driver.aclose()
