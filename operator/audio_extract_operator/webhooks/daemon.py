"""The kopf side of deliveries: one daemon per batch that owes webhooks, ticking the Driver.

A daemon (not a timer) because kopf logs, and by default posts as a Kubernetes Event, every
timer invocation; a daemon runs one loop per batch, reads kopf's live view of the object, and
stays quiet. It runs only while the batch owes or has a pending delivery (the ``when`` filter,
re-evaluated on every watch event), so finished batches cost nothing; after a restart kopf
respawns it for every batch that still matches, which is how a restart resumes deliveries.
Each batch has its own task: a slow receiver holds only its own batch, never reconciliation of
other batches (the Driver bounds attempts in flight across all of them).

Wiring (the operator's startup): ``memo.webhooks = Driver(settings.webhook_config(), patch)``
and ``register(registry)`` before kopf runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf
from audio_extract_common.resource import GROUP, PLURAL, VERSION, BatchSpec, BatchStatus
from audio_extract_common.timefmt import iso

from .driver import BatchRef, Driver, needs_work

log = logging.getLogger(__name__)

HANDLER_ID = "webhooks"
MEMO_KEY = "webhooks"


def _owes(spec: Mapping[str, Any], status: Mapping[str, Any], **_: Any) -> bool:
    return needs_work(spec or {}, status or {})


def register(registry: kopf.OperatorRegistry | None = None, grace: float = 20.0) -> None:
    """Register the delivery daemon on ``registry`` (kopf's default one if None).

    ``grace``: seconds a stopping daemon may take to finish its current tick (longer than one
    attempt's timeout) before kopf cancels it; cancelling between a send and its record only
    costs a duplicate, but there is no reason to provoke one.
    """
    kw: dict[str, Any] = {"registry": registry} if registry is not None else {}

    @kopf.daemon(GROUP, VERSION, PLURAL, id=HANDLER_ID, when=_owes,
                 cancellation_backoff=grace, cancellation_timeout=5.0, **kw)
    async def deliver_webhooks(stopped: kopf.DaemonStopped, body: kopf.Body, memo: kopf.Memo,
                               **_: Any) -> None:
        driver: Driver | None = memo.get(MEMO_KEY)
        if driver is None or not driver.enabled:
            return
        meta = body["metadata"]
        ref = BatchRef(meta["namespace"], meta["name"], meta["uid"])
        while not stopped:
            await run_once(driver, ref, body)
            await stopped.wait(driver.config.poll_interval)


async def run_once(driver: Driver, ref: BatchRef, body: Mapping[str, Any]) -> None:
    """One look at the batch (kopf's live body): tick the driver if anything is owed or due."""
    spec = dict(body.get("spec") or {})
    status = dict(body.get("status") or {})
    if not driver.wants_tick(ref.uid, spec, status, iso(driver.clock())):
        return
    try:
        await driver.tick(ref, BatchSpec.model_validate(spec), BatchStatus.model_validate(status))
    except asyncio.CancelledError:
        raise
    except Exception:  # a bad tick must not end the loop; the next one tries again
        log.exception("webhook tick for %s/%s failed", ref.namespace, ref.name)
