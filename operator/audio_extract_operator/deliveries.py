"""Integration point with the webhooks package (``webhooks/``).

Webhook deliveries are planned from status and driven by ``webhooks.pump.Pump``: one loop that
ticks the ``Driver`` for every batch that owes or has a pending delivery (job terminal →
``JobStatus.webhook``; batch finished → ``BatchStatus.webhook``), one task per batch at a time.
The operator's part is only this wiring:

- ``install(memo, settings, kube)`` at start-up: the one Pump (in ``memo.webhooks``) with
  ``patch_status`` (a JSON patch on the status subresource through our client) as its writer,
  and its loop started;
- ``observe(memo, body, deleted)`` from the batch event handler: every batch event, including
  kopf's initial listing after a restart (which is how pending deliveries resume);
- ``close(memo)`` at clean-up.

The Driver's JSON patches touch only the ``webhook`` paths (guarded by ``test`` ops), while the
operator's own status writes carry a resourceVersion precondition, so neither overwrites the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import kopf

from .kube import Kube, batch_path
from .settings import Settings
from .webhooks.pump import Pump

JSON_PATCH = "application/json-patch+json"
MEMO_KEY = "webhooks"
TASK_KEY = "webhooks_task"


def install(memo: kopf.Memo, settings: Settings, kube: Kube) -> Pump:
    async def patch_status(namespace: str, name: str, ops: list[dict[str, Any]]) -> Mapping[str, Any]:
        return await kube.call("PATCH", batch_path(namespace, name, "status"), ops, content_type=JSON_PATCH)

    pump = Pump(settings.webhook, patch_status)
    memo[MEMO_KEY] = pump
    memo[TASK_KEY] = asyncio.create_task(pump.run(), name="webhook deliveries")
    return pump


def observe(memo: kopf.Memo, body: Mapping[str, Any], deleted: bool = False) -> None:
    pump: Pump | None = memo.get(MEMO_KEY)
    if pump is not None:
        pump.observe(body, deleted)


async def close(memo: kopf.Memo) -> None:
    task: asyncio.Task[None] | None = memo.get(TASK_KEY)
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    pump: Pump | None = memo.get(MEMO_KEY)
    if pump is not None:
        await pump.aclose()
