"""The batch handler never gives up on a batch over errors of the Kubernetes API. kopf counts a
handler's timeout from its first call; in a burst a batch waits minutes for its turn to create
Jobs, and with a 60 s timeout a single 429 afterwards ended its handling for good: the batch kept
an empty status while its Jobs ran (20,000-job KWOK run, docs/benchmarks.md)."""

from __future__ import annotations

import itertools
from typing import Any

import kopf
import pytest

from audio_extract_common.kube import Forbidden, KubeError, Transient
from audio_extract_operator import handlers


def batch_handlers() -> list[Any]:
    registry = kopf.get_default_registry()
    return [h for h in registry._changing.get_all_handlers() if h.fn is handlers.reconcile_batch]


def test_the_batch_handler_has_no_timeout_and_no_retry_limit() -> None:
    found = batch_handlers()
    assert len(found) == 3  # resume, create, update of the spec
    assert [(h.timeout, h.retries) for h in found] == [(None, None)] * 3


@pytest.mark.parametrize(
    ("error", "first"),
    [(Transient(429, "Too Many Requests", ""), 2.0), (Forbidden(403, "Forbidden", ""), 4.0)],
)
def test_retries_come_later_each_time_up_to_a_minute(error: KubeError, first: float) -> None:
    delays = [handlers.kopf_error(error, 2.0, retry).delay for retry in range(10)]
    assert delays[0] == first
    assert all(b == min(2 * a, handlers.MAX_BACKOFF) for a, b in itertools.pairwise(delays))
    assert delays[-1] == handlers.MAX_BACKOFF
