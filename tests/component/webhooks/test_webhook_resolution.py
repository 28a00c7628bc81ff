"""The webhook sender's name resolution against a real, slow DNS server (``slow_dns``, see
tests/component/conftest.py): an attempt ends at its resolve timeout, and a name that never
answers holds up neither the other deliveries nor more than one lookup thread."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from datetime import UTC, datetime

from audio_extract_common.batch_status import Delivery
from audio_extract_common.timefmt import iso
from audio_extract_dev.webhook_receiver import Receiver
from audio_extract_operator.webhooks.config import WebhookSettings
from audio_extract_operator.webhooks.policy import Outcome
from audio_extract_operator.webhooks.send import Sender

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
BODY = b'{"event":"job.completed","jobId":"job_0123456789abcd01","status":"completed"}'


def delivery(url: str, n: int = 0) -> Delivery:
    return Delivery(
        event="job.completed", url=url, id=f"msg_resolution{n:04d}", timestamp=iso(datetime.now(UTC))
    )


def config(resolve_timeout: float) -> WebhookSettings:
    return WebhookSettings(
        secret=SECRET, allow_cidrs="127.0.0.1/32", timeout=3.0, resolve_timeout=resolve_timeout
    )


async def timed_attempt(sender: Sender, d: Delivery) -> tuple[Outcome, float]:
    started = time.monotonic()
    outcome = await sender.attempt(d, BODY)
    return outcome, time.monotonic() - started


async def test_an_attempt_to_a_silent_name_ends_at_its_resolve_timeout(slow_dns):
    sender = Sender(config(resolve_timeout=0.5))
    try:
        with Receiver(SECRET) as rx:
            outcome, took = await timed_attempt(sender, delivery(f"http://hook.never.test:{rx.port}/"))
            print(f"attempt to a silent name: {outcome.error!r} after {took:.3f}s")
            assert outcome.status_code is None and not outcome.blocked  # retried later, on the schedule
            assert outcome.error and "in time" in outcome.error
            assert took < 0.5 + 0.5
            # Its lookup still holds a thread (glibc waits 10 s): the next attempt does not wait again.
            again, took = await timed_attempt(sender, delivery(f"http://hook.never.test:{rx.port}/", 1))
            print(f"next attempt while the lookup lingers: {again.error!r} after {took:.3f}s")
            assert again.error and "in time" in again.error and took < 0.1
    finally:
        await sender.aclose()
    assert len([q for q in slow_dns.queries if q[1] == "hook.never.test" and q[2] == 1]) == 1


async def test_a_silent_name_holds_up_neither_other_deliveries_nor_threads(slow_dns):
    """Forty deliveries to one silent name and five to other silent names (more than anyio's 40
    shared threads), then one to a name that answers: that one is delivered at once, and the
    silent name is looked up once."""
    sender = Sender(config(resolve_timeout=2.0))
    try:
        with Receiver(SECRET) as rx:
            silent = [delivery(f"http://hook.never.test:{rx.port}/", n) for n in range(40)]
            silent += [delivery(f"http://h{n}.never.test:{rx.port}/", 100 + n) for n in range(5)]
            tasks = [asyncio.create_task(timed_attempt(sender, d)) for d in silent]
            await asyncio.sleep(0.2)
            outcome, took = await timed_attempt(sender, delivery(f"http://ok.fast.test:{rx.port}/", 999))
            print(f"delivery to a name that answers: {outcome.status_code} after {took:.3f}s")
            assert outcome.status_code == 200, outcome
            assert took < 0.5
            results = await asyncio.gather(*tasks)
    finally:
        await sender.aclose()
    assert all(o.error and "in time" in o.error for o, _ in results)
    assert max(t for _, t in results) < 2.0 + 0.5
    lookups = [q for q in slow_dns.queries if q[1] == "hook.never.test" and q[2] == 1]
    print(f"A queries for the silent name: {len(lookups)}")
    assert len(lookups) == 1
