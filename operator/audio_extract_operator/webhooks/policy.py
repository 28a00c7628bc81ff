"""When to try again: the backoff schedule and the pure delivery state transition.

``next_state(delivery, outcome, now, schedule)`` is the whole retry policy: any 2xx delivers;
410 gives up; 429 waits for Retry-After; 3xx (never followed), other statuses, timeouts and
connection errors retry on the schedule; a refused (blocked) address gives up at once, since
retrying cannot make it allowed. After the last scheduled attempt the delivery is ``failed``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from audio_extract_common.batch_status import Delivery
from audio_extract_common.timefmt import iso, parse

from .config import DEFAULT_SCHEDULE, WebhookSettings

MAX_ERROR_CHARS = 200


@dataclass(frozen=True)
class Outcome:
    """What one attempt observed: a status code, or an error with no response."""

    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None
    """Seconds, from a 429's Retry-After header."""
    blocked: bool = False
    """The target resolved to an address the guard refuses: no request was sent."""
    read_bytes: int = 0
    """Bytes of the response body read (bounded by the sender)."""


@dataclass(frozen=True)
class Schedule:
    delays: tuple[float, ...] = DEFAULT_SCHEDULE
    """Seconds after attempt n (1-based) before attempt n+1; len(delays) + 1 attempts in all."""
    scale: float = 1.0
    jitter: float = 0.1
    max_retry_after: float = 86400.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    @classmethod
    def from_config(cls, config: WebhookSettings) -> Schedule:
        return cls(tuple(config.schedule), config.schedule_scale, config.jitter)

    @property
    def max_attempts(self) -> int:
        return len(self.delays) + 1

    def delay_after(self, attempt: int) -> float | None:
        """Seconds to wait after attempt ``attempt`` (1-based) failed; None when it was the last."""
        if attempt >= self.max_attempts:
            return None
        base = self.delays[attempt - 1] * self.scale
        # Jitter spreads retries of many events failing together (one receiver down).
        return base * (1 + self.jitter * (2 * self.rng.random() - 1))


def is_due(delivery: Delivery, now: datetime) -> bool:
    return delivery.state == "pending" and (
        delivery.nextAttemptAt is None or parse(delivery.nextAttemptAt) <= now
    )


def _at(now: datetime, seconds: float) -> str:
    # Status times have second precision; round up so an attempt is never made early.
    return iso(now.replace(microsecond=0) + timedelta(seconds=math.ceil(seconds + now.microsecond / 1e6)))


def next_state(delivery: Delivery, outcome: Outcome, now: datetime, schedule: Schedule) -> Delivery:
    attempts = delivery.attempts + 1
    code = outcome.status_code
    error = outcome.error[:MAX_ERROR_CHARS] if outcome.error else None
    if code is not None and 300 <= code < 400 and error is None:
        error = "redirect not followed"
    base = delivery.model_copy(update={"attempts": attempts, "lastStatusCode": code, "lastError": error})

    if code is not None and 200 <= code < 300:
        return base.model_copy(update={"state": "delivered", "nextAttemptAt": None, "deliveredAt": iso(now)})
    if code == 410 or outcome.blocked:
        return base.model_copy(update={"state": "failed", "nextAttemptAt": None})
    delay = schedule.delay_after(attempts)
    if delay is None:
        return base.model_copy(update={"state": "failed", "nextAttemptAt": None})
    if code == 429 and outcome.retry_after is not None:
        delay = min(max(outcome.retry_after, 0.0), schedule.max_retry_after)
    return base.model_copy(update={"state": "pending", "nextAttemptAt": _at(now, delay)})
