"""When to send a request again, and the key that makes sending a submission again safe (pure).

The API answers 429 ``RATE_LIMITED`` and 503 ``QUEUE_FULL``/``STORE_FULL``/``SERVICE_UNAVAILABLE``
with a ``Retry-After`` header: nothing was accepted, the same request can be sent again after that
wait. A submission also carries an ``Idempotency-Key``, generated once per submission and sent
unchanged on every retry, so a retry after a lost answer (the batch was created, the reply never
arrived) returns the same batch instead of creating a second one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

RETRY_STATUSES = frozenset({429, 503})


def new_idempotency_key() -> str:
    """A fresh key for one submission (128 random bits, printable ASCII as the API requires)."""
    return f"ae-{secrets.token_hex(16)}"


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on retrying one request.

    ``attempts`` is the most times a request is sent in all. A ``Retry-After`` is honoured as
    given (never retried sooner) but one longer than ``max_delay`` ends the retries: waiting
    minutes inside a call is the caller's decision, not the library's. Without the header (or for a
    request that got no answer at all) the waits grow from ``backoff`` seconds, doubling, up to
    ``max_delay``. ``budget`` caps the sum of the waits of one request.
    """

    attempts: int = 5
    backoff: float = 0.5
    max_delay: float = 60.0
    budget: float = 180.0

    def delay(self, attempt: int, waited: float, retry_after: float | None) -> float | None:
        """The wait before attempt ``attempt + 1`` (attempts count from 1), or None to stop.

        ``waited`` is the sum of the waits so far; ``retry_after`` what the server asked for."""
        if attempt >= self.attempts:
            return None
        if retry_after is not None:
            wait = retry_after
            if wait > self.max_delay:
                return None
        else:
            wait = min(self.max_delay, self.backoff * 2 ** (attempt - 1))
        if waited + wait > self.budget:
            return None
        return wait


NO_RETRY = RetryPolicy(attempts=1)
