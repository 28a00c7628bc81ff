"""Integration point with the webhooks package (``webhooks/``).

Webhook deliveries are planned from status and driven by ``webhooks.pump.Pump``: one loop that
ticks the ``Driver`` for every batch that owes or has a pending delivery (job terminal →
``JobStatus.webhook``; batch finished → ``BatchStatus.webhook``), one task per batch at a time.
The operator's part is only this wiring:

- ``install(state)`` at start-up: the one Pump (``state.webhooks``) with ``patch_status`` (a JSON
  patch on the status subresource through our client) as its writer, fed by the operator's own
  status writes, and its loop started (``state.webhooks_task``);
- ``observe(state, body, deleted)`` from the batch event handler: every batch event, including
  kopf's initial listing after a restart (which is how pending deliveries resume);
- ``OperatorState.close`` stops it at clean-up.

The Driver's JSON patches touch only the ``webhook`` paths (guarded by ``test`` ops), while the
operator's own status writes carry a resourceVersion precondition, so neither overwrites the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .kube import batch_path
from .webhooks.pump import Pump

if TYPE_CHECKING:
    from .state import OperatorState

JSON_PATCH = "application/json-patch+json"


def install(state: OperatorState) -> Pump:
    kube = state.kube

    async def patch_status(namespace: str, name: str, ops: list[dict[str, Any]]) -> Mapping[str, Any]:
        written = await kube.call(
            "PATCH", batch_path(namespace, name, "status"), ops, content_type=JSON_PATCH
        )
        state.writer.observe(written)  # the status writer's next write of it needs no read
        return written

    pump = Pump(state.settings.webhook, patch_status)
    state.webhooks = pump
    state.writer.listeners.append(pump.observe)
    state.webhooks_task = asyncio.create_task(pump.run(), name="webhook deliveries")
    return pump


def observe(state: OperatorState, body: Mapping[str, Any], deleted: bool = False) -> None:
    if state.webhooks is not None:
        state.webhooks.observe(body, deleted)
