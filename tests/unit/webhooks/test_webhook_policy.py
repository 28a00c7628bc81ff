"""Backoff schedule and the pure delivery state transition."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from audio_extract_common.batch_status import Delivery
from audio_extract_common.timefmt import iso, parse
from audio_extract_operator.webhooks.config import DEFAULT_SCHEDULE, WebhookSettings
from audio_extract_operator.webhooks.policy import Outcome, Schedule, is_due, next_state

NOW = datetime(2026, 1, 21, 12, 0, 0, tzinfo=UTC)
EXACT = Schedule(jitter=0.0)


def pending(attempts: int = 0) -> Delivery:
    return Delivery(
        event="job.completed",
        url="https://h.example.com/",
        id="msg_x",
        timestamp=iso(NOW),
        attempts=attempts,
        nextAttemptAt=iso(NOW),
    )


def test_default_schedule_spans_about_a_day_in_eight_attempts():
    assert EXACT.max_attempts == 8
    total = sum(EXACT.delay_after(n) for n in range(1, 8))
    assert timedelta(hours=24) <= timedelta(seconds=total) <= timedelta(hours=36)
    assert EXACT.delay_after(1) == 5 and EXACT.delay_after(2) == 300
    assert EXACT.delay_after(8) is None


def test_jitter_stays_within_its_fraction_and_varies():
    s = Schedule(jitter=0.1, rng=random.Random(7))
    delays = [s.delay_after(3) for _ in range(200)]
    assert all(1620 <= d <= 1980 for d in delays)
    assert len({round(d) for d in delays}) > 20


def test_scale_shrinks_the_schedule_for_tests():
    s = Schedule.from_config(WebhookSettings(secret="whsec_AAAA", schedule_scale=0.001, jitter=0))
    assert s.delays == DEFAULT_SCHEDULE
    assert s.delay_after(2) == pytest.approx(0.3)


@pytest.mark.parametrize("code", [200, 201, 202, 204, 299])
def test_any_2xx_delivers(code):
    d = next_state(pending(2), Outcome(status_code=code), NOW, EXACT)
    assert (d.state, d.attempts, d.lastStatusCode, d.nextAttemptAt, d.deliveredAt) == (
        "delivered",
        3,
        code,
        None,
        iso(NOW),
    )
    assert d.id == "msg_x" and d.lastError is None


@pytest.mark.parametrize("code", [301, 302, 307, 308])
def test_3xx_is_a_failure_that_retries(code):
    d = next_state(pending(0), Outcome(status_code=code), NOW, EXACT)
    assert (d.state, d.attempts, d.lastStatusCode) == ("pending", 1, code)
    assert d.lastError == "redirect not followed"
    assert parse(d.nextAttemptAt) == NOW + timedelta(seconds=5)


def test_410_stops_at_once():
    d = next_state(pending(0), Outcome(status_code=410), NOW, EXACT)
    assert (d.state, d.attempts, d.nextAttemptAt, d.lastStatusCode) == ("failed", 1, None, 410)


def test_blocked_address_gives_up_without_retrying():
    d = next_state(pending(0), Outcome(error="address 127.0.0.1 is not allowed", blocked=True), NOW, EXACT)
    assert (d.state, d.attempts, d.lastStatusCode) == ("failed", 1, None)
    assert "not allowed" in d.lastError


def test_429_honours_retry_after_capped():
    d = next_state(pending(0), Outcome(status_code=429, retry_after=120), NOW, EXACT)
    assert parse(d.nextAttemptAt) == NOW + timedelta(seconds=120)
    d = next_state(pending(0), Outcome(status_code=429, retry_after=10**9), NOW, EXACT)
    assert parse(d.nextAttemptAt) == NOW + timedelta(days=1)
    d = next_state(pending(0), Outcome(status_code=429), NOW, EXACT)  # no header: the schedule
    assert parse(d.nextAttemptAt) == NOW + timedelta(seconds=5)


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome(status_code=500),
        Outcome(status_code=404),
        Outcome(error="timed out after 15s"),
        Outcome(error="connection refused"),
    ],
)
def test_errors_retry_on_the_schedule_then_fail_after_the_last(outcome):
    d = pending()
    now = NOW
    seen = []
    while d.state == "pending":
        d = next_state(d, outcome, now, EXACT)
        if d.nextAttemptAt:
            seen.append(parse(d.nextAttemptAt) - now)
            now = parse(d.nextAttemptAt)
    assert d.state == "failed" and d.attempts == 8 and d.nextAttemptAt is None
    assert seen == [timedelta(seconds=s) for s in DEFAULT_SCHEDULE]
    assert d.lastStatusCode == outcome.status_code and d.lastError == outcome.error


def test_next_attempt_is_never_early_with_subsecond_now():
    now = NOW + timedelta(microseconds=300_000)
    d = next_state(pending(0), Outcome(status_code=500), now, Schedule(delays=(0.5,), jitter=0))
    assert parse(d.nextAttemptAt) >= now + timedelta(seconds=0.5)


def test_is_due():
    d = pending()
    assert is_due(d, NOW)
    later = d.model_copy(update={"nextAttemptAt": iso(NOW + timedelta(seconds=5))})
    assert not is_due(later, NOW) and is_due(later, NOW + timedelta(seconds=5))
    assert not is_due(d.model_copy(update={"state": "delivered"}), NOW)


def test_long_error_is_truncated():
    d = next_state(pending(), Outcome(error="x" * 5000), NOW, EXACT)
    assert len(d.lastError) == 200
