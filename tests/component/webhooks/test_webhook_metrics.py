"""The delivery loop's metrics (``audio_extract_operator.metrics``): attempts by outcome and tenant,
the event → delivery latency, and the backlog gauge, which counts deliveries owed or pending and
drops to zero once everything is delivered. Against a real receiver that fails first."""

from __future__ import annotations

import asyncio
import copy

from test_webhook_driver import SECRET, config
from test_webhook_pump import Router, until, versioned

from audio_extract_common import ids
from audio_extract_dev.webhook_receiver import Receiver, Reply
from audio_extract_operator import logs, metrics
from audio_extract_operator.webhooks.pump import Pump

TENANT = "acme-media"


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def backlog() -> float:
    return value("audio_extract_operator_webhook_pending")


async def test_attempts_latency_and_backlog_of_the_pump() -> None:
    delivered = value(
        "audio_extract_operator_webhook_deliveries_total",
        outcome="delivered",
        event="job.completed",
        tenant=TENANT,
    )
    retrying = value(
        "audio_extract_operator_webhook_deliveries_total",
        outcome="retrying",
        event="job.completed",
        tenant=TENANT,
    )
    batch_done = value(
        "audio_extract_operator_webhook_deliveries_total",
        outcome="delivered",
        event="batch.completed",
        tenant=TENANT,
    )
    latencies = value("audio_extract_operator_webhook_delivery_latency_seconds_count", event="job.completed")
    # the first two requests fail (one job's event is retried), then every one succeeds
    with Receiver(SECRET, lambda _r, n: Reply(500 if n < 2 else 200)) as rx:
        store = versioned(2, rx.url, "b", "uid-metrics")
        store.obj["metadata"]["labels"] = {ids.TENANT_LABEL: TENANT}
        pump = Pump(config(poll_interval=0.2, schedule=(0.0,) * 5), Router(store).patch)
        metrics.watch(None, pump)
        try:
            pump.observe(copy.deepcopy(store.obj))
            assert backlog() == 3  # two job events and the batch's, none sent yet
            task = asyncio.create_task(pump.run())
            await until(lambda: store.obj["status"].get("webhook", {}).get("state") == "delivered", 10)
            await until(lambda: backlog() == 0, 5)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await pump.aclose()
        finally:
            metrics.watch(None, None)
    assert (
        value(
            "audio_extract_operator_webhook_deliveries_total",
            outcome="delivered",
            event="job.completed",
            tenant=TENANT,
        )
        == delivered + 2
    )
    assert (
        value(
            "audio_extract_operator_webhook_deliveries_total",
            outcome="retrying",
            event="job.completed",
            tenant=TENANT,
        )
        >= retrying + 1
    )
    assert (
        value(
            "audio_extract_operator_webhook_deliveries_total",
            outcome="delivered",
            event="batch.completed",
            tenant=TENANT,
        )
        == batch_done + 1
    )
    assert (
        value("audio_extract_operator_webhook_delivery_latency_seconds_count", event="job.completed")
        == latencies + 2
    )
    assert logs.tenant.get() == logs.NONE  # the tenant was the tick task's, not this one's
