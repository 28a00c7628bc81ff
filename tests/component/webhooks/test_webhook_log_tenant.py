"""The webhook delivery lines name the tenant of the batch whose event they deliver (docs/contract.md §7),
through the operator's log format and filter (``audio_extract_operator.logs``)."""

from __future__ import annotations

import asyncio
import copy
import io
import logging

from test_webhook_driver import SECRET, config
from test_webhook_pump import Router, until, versioned

from audio_extract_common import ids
from audio_extract_dev.webhook_receiver import Receiver
from audio_extract_operator import logs
from audio_extract_operator.webhooks.pump import Pump

TENANT = "acme-media"


async def test_webhook_delivery_lines_name_the_tenant() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(logs.FORMAT))
    handler.addFilter(logs.TenantFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        with Receiver(SECRET) as rx:
            store = versioned(2, rx.url, "b", "uid-1")
            store.obj["metadata"]["labels"] = {ids.TENANT_LABEL: TENANT}
            pump = Pump(config(poll_interval=0.2), Router(store).patch)
            task = asyncio.create_task(pump.run())
            try:
                pump.observe(copy.deepcopy(store.obj))
                await until(lambda: len(rx.received) == 3 and "webhook" in store.obj["status"], 5)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await pump.aclose()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    sent = [line for line in stream.getvalue().splitlines() if " attempt 1 -> " in line]
    assert len(sent) == 3 and all(f"webhooks.driver tenant={TENANT}: webhook " in line for line in sent), sent
