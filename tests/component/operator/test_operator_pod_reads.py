"""Reading a finished Job's pods for the worker's result: from the API server's watch cache
(``resourceVersion=0``), and again with a consistent list only when the cache has no result yet.

A consistent list of pods costs the API server far more than a cached one, and the operator makes
one for every job that ends: in a burst of jobs ending together, consistent lists kept their
outcomes out of status for tens of seconds (docs/benchmarks.md, "Simulated nodes").

The operator's reconciler and status writer run unchanged; only the API server is the in-memory
fake (``operator_fakeapi``)."""

from __future__ import annotations

from typing import Any

from operator_fakeapi import NS, FakeApi, job_name

from audio_extract_common.batch_status import OutputFile
from audio_extract_common.results import WorkerResult
from audio_extract_operator import loops
from audio_extract_operator.state import OperatorState
from support.operator_settings import operator_settings

OUT = OutputFile(filename="a.wav", path="job_x/a.wav", size=10, format="wav")


async def started(api: FakeApi) -> tuple[OperatorState, dict[str, Any]]:
    """The operator's state with one batch of one job, admitted."""
    s = operator_settings(admission__max_running=1, progress__port=0)
    state = OperatorState(s, api)
    body = api.add_batch("b", 1)
    state.registry.observe_batch(body)
    await state.reconciler.batch(body)
    await loops.admission_pass(api, s, state.registry, state.reconciler)
    return state, body


def pod_reads(api: FakeApi) -> list[str | None]:
    """The ``resourceVersion`` of each list of pods made, in order (None: a consistent list)."""
    return [q.get("resourceVersion") for q in api.lists("pods")]


async def test_a_finished_jobs_result_is_read_from_the_cache() -> None:
    api = FakeApi()
    state, body = await started(api)
    finished = api.finish_job(NS, job_name(body, 0), "Complete", WorkerResult(output=OUT))
    await state.reconciler.job(finished)
    [entry] = api.get("extractionbatches", NS, "b")["status"]["jobs"]
    assert entry["status"] == "completed" and entry["outputFile"]["filename"] == "a.wav"
    assert pod_reads(api) == ["0"]


async def test_a_cache_behind_the_pod_costs_one_consistent_read_and_loses_nothing() -> None:
    api = FakeApi()
    state, body = await started(api)
    api.cache_rv = api.rv  # the pod the worker ends in is written after this
    finished = api.finish_job(NS, job_name(body, 0), "Complete", WorkerResult(output=OUT))
    await state.reconciler.job(finished)
    [entry] = api.get("extractionbatches", NS, "b")["status"]["jobs"]
    assert entry["status"] == "completed" and entry["outputFile"]["filename"] == "a.wav"
    assert pod_reads(api) == ["0", None]


async def test_a_pod_that_left_no_result_is_read_again_before_the_job_is_failed() -> None:
    api = FakeApi()
    state, body = await started(api)
    finished = api.finish_job(NS, job_name(body, 0), "Failed", None, reason="BackoffLimitExceeded")
    await state.reconciler.job(finished)
    [entry] = api.get("extractionbatches", NS, "b")["status"]["jobs"]
    assert entry["status"] == "failed" and entry["error"]["code"] == "INTERNAL_ERROR"
    assert pod_reads(api) == ["0", None]
