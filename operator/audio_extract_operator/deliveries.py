"""Integration point with the webhooks package (``webhooks/``, owned by the webhooks engineer).

Webhook deliveries are planned from status and driven by ``webhooks.daemon``: a kopf daemon per
batch that owes or has a pending delivery (job terminal → ``JobStatus.webhook``; batch finished →
``BatchStatus.webhook``). The operator's part is only this wiring:

- ``register()`` at import time of ``handlers`` adds the daemon to kopf's registry;
- ``install(memo, settings, kube)`` at start-up puts the one ``Driver`` into ``memo.webhooks``,
  with ``patch_status`` (a JSON patch on the status subresource through our client) as its writer;
- ``close(memo)`` at clean-up.

The Driver's JSON patches touch only the ``webhook`` paths (guarded by ``test`` ops), while the
operator's own status writes carry a resourceVersion precondition, so neither overwrites the other.
"""

from __future__ import annotations

from typing import Any

import kopf

from .kube import Kube, batch_path
from .settings import Settings
from .webhooks.daemon import MEMO_KEY
from .webhooks.daemon import register as register_daemon
from .webhooks.driver import Driver

JSON_PATCH = "application/json-patch+json"


def register() -> None:
    register_daemon()


def install(memo: kopf.Memo, settings: Settings, kube: Kube) -> Driver:
    async def patch_status(namespace: str, name: str, ops: list[dict[str, Any]]) -> None:
        await kube.call("PATCH", batch_path(namespace, name, "status"), ops, content_type=JSON_PATCH)

    driver = Driver(settings.webhook_config(), patch_status)
    memo[MEMO_KEY] = driver
    return driver


async def close(memo: kopf.Memo) -> None:
    driver: Driver | None = memo.get(MEMO_KEY)
    if driver is not None:
        await driver.aclose()
