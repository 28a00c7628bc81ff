"""One-attempt sender against real HTTP servers on 127.0.0.1 (allowlisted unless a test says not)."""

from __future__ import annotations

import base64
import itertools
import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from audio_extract_common.batch_status import Delivery
from audio_extract_common.timefmt import iso, parse
from audio_extract_dev.webhook_receiver import Receiver, Reply
from audio_extract_operator.webhooks.config import WebhookSettings
from audio_extract_operator.webhooks.policy import Schedule, next_state
from audio_extract_operator.webhooks.send import Sender

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
BODY = b'{"event":"job.completed","jobId":"job_0123456789abcd01","status":"completed"}'
INSTANT = Schedule(delays=(0.0,) * 7, jitter=0.0)


def config(allow: str = "127.0.0.1/32", timeout: float = 3.0) -> WebhookSettings:
    return WebhookSettings(secret=SECRET, allow_cidrs=allow, timeout=timeout)


def delivery(url: str, id_: str = "msg_component0001") -> Delivery:
    return Delivery(event="job.completed", url=url, id=id_, timestamp=iso(datetime.now(UTC)))


@pytest.fixture
async def sender():
    s = Sender(config())
    yield s
    await s.aclose()


async def drive(sender: Sender, d: Delivery, schedule: Schedule = INSTANT) -> Delivery:
    """Attempt until the delivery is no longer pending (the schedule is instant)."""
    while d.state == "pending":
        d = next_state(d, await sender.attempt(d, BODY), datetime.now(UTC), schedule)
    return d


async def test_delivery_is_signed_and_verifies(sender):
    with Receiver(SECRET) as rx:
        d = await drive(sender, delivery(rx.url + "hook?x=1"))
    assert (d.state, d.attempts, d.lastStatusCode) == ("delivered", 1, 200)
    [got] = rx.received
    assert got.verified and got.payload["jobId"] == "job_0123456789abcd01"
    assert got.body == BODY and got.path == "/hook?x=1"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["webhook-id"] == "msg_component0001"
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 5


async def test_500_three_times_then_200_is_four_attempts_with_one_id(sender):
    with Receiver(SECRET, lambda _r, n: Reply(500 if n < 3 else 200)) as rx:
        d = await drive(sender, delivery(rx.url))
    assert (d.state, d.attempts, d.lastStatusCode) == ("delivered", 4, 200)
    assert len(rx.received) == 4
    assert {r.id for r in rx.received} == {"msg_component0001"}
    assert all(r.verified for r in rx.received)


async def test_410_stops_after_one_attempt(sender):
    with Receiver(SECRET, lambda _r, _n: Reply(410)) as rx:
        d = await drive(sender, delivery(rx.url))
    assert (d.state, d.attempts, d.lastStatusCode) == ("failed", 1, 410)
    assert len(rx.received) == 1


async def test_always_500_fails_after_the_last_scheduled_attempt(sender):
    with Receiver(SECRET, lambda _r, _n: Reply(503)) as rx:
        d = await drive(sender, delivery(rx.url))
    assert (d.state, d.attempts, d.lastStatusCode) == ("failed", 8, 503)
    assert len(rx.received) == 8


async def test_429_retry_after_sets_the_next_attempt(sender):
    with Receiver(SECRET, lambda _r, _n: Reply(429, {"Retry-After": "120"})) as rx:
        outcome = await sender.attempt(delivery(rx.url), BODY)
    assert (outcome.status_code, outcome.retry_after) == (429, 120.0)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    d = next_state(delivery(rx.url), outcome, now, Schedule(jitter=0))
    assert parse(d.nextAttemptAt) == now + timedelta(seconds=120)


@pytest.mark.parametrize("code", [301, 302, 307, 308])
async def test_redirect_is_a_failure_and_never_followed(sender, code):
    with (
        Receiver(SECRET) as internal,
        Receiver(SECRET, lambda _r, _n: Reply(code, {"Location": internal.url + "admin"})) as rx,
    ):
        outcome = await sender.attempt(delivery(rx.url), BODY)
        d = next_state(delivery(rx.url), outcome, datetime.now(UTC), Schedule(jitter=0))
    assert outcome.status_code == code
    assert (d.state, d.lastError) == ("pending", "redirect not followed")
    assert len(rx.received) == 1 and internal.received == []


async def test_huge_and_endless_bodies_are_read_only_up_to_64_kib(sender):
    endless = itertools.repeat(b"x" * 16384)
    with Receiver(SECRET, lambda _r, _n: Reply(200, body=endless)) as rx:
        started = time.monotonic()
        outcome = await sender.attempt(delivery(rx.url), BODY)
        took = time.monotonic() - started
    assert outcome.status_code == 200
    assert 64 * 1024 <= outcome.read_bytes <= 2 * 64 * 1024
    assert took < 2.0  # stopped reading, did not wait for the (never coming) end
    with Receiver(SECRET, lambda _r, _n: Reply(500, body=b"y" * (8 << 20))) as rx:
        outcome = await sender.attempt(delivery(rx.url), BODY)
    assert outcome.status_code == 500 and outcome.read_bytes <= 2 * 64 * 1024


async def test_a_trickling_body_is_cut_at_the_deadline_and_keeps_the_status():
    def trickle():
        while True:
            time.sleep(0.2)
            yield b"."

    s = Sender(config(timeout=1.0))
    try:
        with Receiver(SECRET, lambda _r, _n: Reply(200, body=trickle())) as rx:
            started = time.monotonic()
            outcome = await s.attempt(delivery(rx.url), BODY)
            took = time.monotonic() - started
    finally:
        await s.aclose()
    assert outcome.status_code == 200 and 0.8 <= took < 2.0


async def test_no_answer_times_out():
    def hang(_r, _n):
        time.sleep(2.5)
        return Reply(200)

    s = Sender(config(timeout=1.0))
    try:
        with Receiver(SECRET, hang) as rx:
            started = time.monotonic()
            outcome = await s.attempt(delivery(rx.url), BODY)
            took = time.monotonic() - started
    finally:
        await s.aclose()
    assert outcome.status_code is None and outcome.error == "timed out after 1s"
    assert took < 2.0


async def test_connection_refused_is_a_retryable_error(sender):
    with Receiver(SECRET) as rx:
        url = rx.url
    outcome = await sender.attempt(delivery(url), BODY)
    assert outcome.status_code is None and outcome.error and not outcome.blocked
    d = next_state(delivery(url), outcome, datetime.now(UTC), Schedule(jitter=0))
    assert d.state == "pending"


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "[::ffff:127.0.0.1]", "2130706433", "0x7f.1", "127.1", "localhost"]
)
async def test_loopback_in_any_spelling_is_refused_without_a_request(host):
    s = Sender(config(allow=""))
    try:
        with Receiver(SECRET) as rx:
            d = await drive(s, delivery(f"http://{host}:{rx.port}/"))
    finally:
        await s.aclose()
    assert d.state == "failed" and d.attempts == 1 and d.lastStatusCode is None
    assert "not a public address" in d.lastError
    assert rx.received == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
    ],
)
async def test_private_and_metadata_targets_are_refused_even_with_a_broad_allowlist(url):
    s = Sender(config(allow="127.0.0.1/32,169.254.0.0/16,100.64.0.0/10"))
    try:
        outcome = await s.attempt(delivery(url), BODY)
    finally:
        await s.aclose()
    assert outcome.blocked and outcome.status_code is None


async def test_deliveries_to_one_receiver_reuse_a_kept_alive_connection(sender):
    with Receiver(SECRET) as rx:
        for i in range(20):
            assert (await sender.attempt(delivery(rx.url, f"msg_reuse{i:04d}"), BODY)).status_code == 200
    assert len(rx.received) == 20
    assert len({r.peer_port for r in rx.received}) == 1


async def test_a_response_not_read_to_its_end_closes_its_connection(sender):
    endless = itertools.repeat(b"x" * 16384)
    with Receiver(SECRET, lambda _r, n: Reply(200, body=endless) if n == 0 else Reply(200)) as rx:
        first = await sender.attempt(delivery(rx.url), BODY)
        second = await sender.attempt(delivery(rx.url), BODY)
        third = await sender.attempt(delivery(rx.url), BODY)
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 200)
    ports = [r.peer_port for r in rx.received]
    assert ports[0] != ports[1] == ports[2]  # a fresh connection after the cut one, then reused
