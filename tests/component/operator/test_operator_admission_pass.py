"""An admission pass over a burst: every chosen Job is unsuspended, and each batch's admitted jobs
are recorded in its status in one write, not one write per Job (which held a burst of thousands
to a few admissions a second). The operator's reconciler, status writer and loops run unchanged
against the in-memory API server (``operator_fakeapi``)."""

from __future__ import annotations

from typing import Any

import pytest
from operator_fakeapi import JOB, NS, FakeApi

from audio_extract_common.batch_status import BatchStatus, JobState
from audio_extract_common.kube import Transient
from audio_extract_common.results import ProgressReport
from audio_extract_operator import loops, metrics
from audio_extract_operator.progress import applying
from audio_extract_operator.registry import JobInfo
from audio_extract_operator.settings import Settings
from audio_extract_operator.state import OperatorState
from support.operator_settings import operator_settings


def operator(
    max_running: int, synced: bool = True, **settings: Any
) -> tuple[FakeApi, Settings, OperatorState]:
    """The in-memory API server, settings and operator state; ``synced``: its Jobs were listed."""
    api = FakeApi()
    config = operator_settings(admission__max_running=max_running, progress__port=0, **settings)
    state = OperatorState(config, api)
    state.registry.jobs_synced = synced
    return api, config, state


def new_batch(api: FakeApi, state: OperatorState, name: str, jobs: int) -> dict[str, Any]:
    """A batch created, and seen by the operator's watch."""
    body = api.add_batch(name, jobs=jobs)
    state.registry.observe_batch(body)
    return body


async def test_a_burst_is_admitted_with_one_status_write_per_batch() -> None:
    api, settings, state = operator(max_running=25, synced=False)
    for name in ("a", "b", "c"):
        await state.reconciler.batch(new_batch(api, state, name, 10))
    api.calls.clear()
    events_before = len(api.events)

    admitted = await loops.admission_pass(api, settings, state.registry, state.reconciler)

    assert admitted == 25
    jobs: list[dict[str, Any]] = [api.get("jobs", NS, n) for n in api.names("jobs")]
    assert sum(1 for j in jobs if not j["spec"]["suspend"]) == 25
    states = {n: [e["status"] for e in api.get("extractionbatches", NS, n)["status"]["jobs"]] for n in "abc"}
    assert sum(s.count("processing") for s in states.values()) == 25
    assert sum(s.count("queued") for s in states.values()) == 5
    status_writes = [p for m, p, _ in api.calls if m == "PATCH" and p.endswith("/status")]
    assert len(status_writes) == 3, status_writes  # one per batch
    batch_reads = [p for m, p, _ in api.calls if m == "GET" and "/extractionbatches/" in p]
    assert batch_reads == []  # the writer knows each batch's object from its own last write
    started = [e for e in api.events[events_before:] if e["reason"] == "JobStarted"]
    assert len(started) == 3  # one per batch, naming its jobs
    named = {e["involvedObject"]["name"]: e["message"].count("job_") for e in started}
    assert sorted(named.values()) == [5, 10, 10], named


async def test_a_batch_whose_first_status_write_failed_makes_no_job_until_its_entries_exist() -> None:
    # Started without an entry, a job would run and end with nothing in status to record it in
    # (its outcome found only when a watch lists the Jobs again, minutes later).
    api, _, state = operator(max_running=5)
    body = new_batch(api, state, "a", 2)
    api.fail = lambda m, p, q: Transient(503, "ServiceUnavailable", "") if p.endswith("/status") else None
    with pytest.raises(Transient):
        await state.reconciler.batch(body)
    assert api.names("jobs") == []
    assert state.registry.starting == 0

    api.fail = None
    await state.reconciler.batch(body)  # kopf's next attempt
    assert [api.get("jobs", NS, n)["spec"]["suspend"] for n in api.names("jobs")] == [False, False]
    entries = api.get("extractionbatches", NS, "a")["status"]["jobs"]
    assert [e["status"] for e in entries] == ["processing", "processing"]


def admitted_count() -> float:
    return sum(
        s.value
        for family in metrics.REGISTRY.collect()
        if family.name == "audio_extract_operator_jobs_admitted"
        for s in family.samples
        if s.name.endswith("_total")
    )


async def test_jobs_with_free_slots_are_made_started_after_their_entries() -> None:
    # An unsuspend request per Job was a fifth of the operator's requests, and a pass's delay.
    api, settings, state = operator(max_running=25)
    body = new_batch(api, state, "a", 10)
    before = admitted_count()

    await state.reconciler.batch(body)

    assert [api.get("jobs", NS, n)["spec"]["suspend"] for n in api.names("jobs")] == [False] * 10
    entries = api.get("extractionbatches", NS, "a")["status"]["jobs"]
    assert [e["status"] for e in entries] == ["processing"] * 10
    assert all(e["startedAt"] for e in entries)
    calls = [(m, p) for m, p, _ in api.calls]
    first_create = calls.index(("POST", "/apis/batch/v1/namespaces/ns/jobs"))
    assert any(m == "PATCH" and p.endswith("/status") for m, p in calls[:first_create])  # entries first
    assert [p for m, p in calls if m == "PATCH" and "/jobs/" in p] == []  # no unsuspending
    assert len([p for m, p in calls if m == "PATCH" and p.endswith("/status")]) == 2
    assert admitted_count() - before == 10
    assert state.registry.starting == 0
    assert await loops.admission_pass(api, settings, state.registry, state.reconciler) == 0


async def test_a_job_made_started_is_not_mapped_on_its_own_while_its_batch_is_made() -> None:
    # Its own events would each write "processing" (and post an Event) before the handler's one
    # write for the whole batch: twice the status writes of a burst.
    api, _, state = operator(max_running=25)
    body = new_batch(api, state, "a", 3)
    mapped_meanwhile: list[bool] = []

    def a_job_event_arrives(method: str, path: str, _query: dict[str, str]) -> None:
        if method == "POST" and path.endswith("/jobs"):
            state.registry.observe_batch(api.get("extractionbatches", NS, "a"))  # entries seen
            for name in api.names("jobs"):  # the Jobs made so far
                info = JobInfo.of(api.get("jobs", NS, name))
                assert info is not None and info.running
                mapped_meanwhile.append(state.reconciler.needs_update(info))

    api.fail = a_job_event_arrives
    await state.reconciler.batch(body)

    assert len(mapped_meanwhile) == 3 and not any(mapped_meanwhile)  # 0 + 1 + 2 Jobs seen
    assert state.registry.made_started == set()
    api.fail = None
    state.registry.observe_batch(api.get("extractionbatches", NS, "a"))
    running = JobInfo.of(api.get("jobs", NS, api.names("jobs")[0]))
    assert running is not None and not state.reconciler.needs_update(running)  # it is processing


async def test_only_the_free_slots_are_taken_in_priority_order() -> None:
    api, settings, state = operator(max_running=3)
    api.add_batch("a", jobs=4)
    priorities = ["low", "high", "normal", "high"]
    api.objects[("extractionbatches", NS, "a")]["spec"]["jobs"] = [
        {**JOB, "options": {"priority": p}} for p in priorities
    ]
    body = api.get("extractionbatches", NS, "a")
    state.registry.observe_batch(body)

    await state.reconciler.batch(body)

    entries = api.get("extractionbatches", NS, "a")["status"]["jobs"]
    assert [e["status"] for e in entries] == ["queued", "processing", "processing", "processing"]
    assert {n: api.get("jobs", NS, n)["spec"]["suspend"] for n in api.names("jobs")} == {
        e["jobName"]: e["status"] == "queued" for e in entries
    }
    assert await loops.admission_pass(api, settings, state.registry, state.reconciler) == 0  # full


async def test_jobs_queued_ahead_keep_a_new_batchs_jobs_suspended() -> None:
    api, settings, state = operator(max_running=5, synced=False)
    await state.reconciler.batch(new_batch(api, state, "a", 3))  # before the Jobs were listed: nothing starts
    state.registry.observe_batch(api.get("extractionbatches", NS, "a"))
    state.registry.jobs_synced = True
    second = new_batch(api, state, "b", 1)

    await state.reconciler.batch(second)

    assert all(api.get("jobs", NS, n)["spec"]["suspend"] for n in api.names("jobs"))
    assert await loops.admission_pass(api, settings, state.registry, state.reconciler) == 4


async def test_with_kueue_every_job_is_made_suspended() -> None:
    api, _, state = operator(max_running=25, admission__kueue_queue="q")
    body = new_batch(api, state, "a", 2)

    await state.reconciler.batch(body)

    assert [api.get("jobs", NS, n)["spec"]["suspend"] for n in api.names("jobs")] == [True, True]
    assert state.registry.starting == 0


STARTED = "2026-01-21T12:00:05Z"


async def a_waiting_job(name: str) -> tuple[FakeApi, OperatorState, JobInfo]:
    """A batch of two jobs with one slot: job 0 starts, job 1's Job waits suspended for admission."""
    api, _, state = operator(max_running=1)
    await state.reconciler.batch(new_batch(api, state, name, 2))
    info = next(
        i
        for i in (JobInfo.of(api.get("jobs", NS, n) or {}) for n in api.names("jobs"))
        if i is not None and i.index == 1
    )
    assert info.suspended
    return api, state, info


def entry(api: FakeApi, name: str, index: int) -> dict[str, Any]:
    return api.get("extractionbatches", NS, name)["status"]["jobs"][index]  # type: ignore[index,no-any-return]


async def test_a_workers_report_before_the_admission_write_leaves_the_start_to_it() -> None:
    # The report moved the entry to processing first, and admission, finding nothing queued,
    # wrote no startedAt: null until the job ended, and no job duration recorded.
    api, state, info = await a_waiting_job("a")
    report = ProgressReport(jobId=entry(api, "a", 1)["jobId"], step="downloading_video", progress=10)  # type: ignore[arg-type]
    await state.writer.update(NS, "a", applying({1: report}))

    await state.reconciler.admitted([info], STARTED)

    assert (entry(api, "a", 1)["status"], entry(api, "a", 1)["startedAt"]) == ("processing", STARTED)


async def test_admission_dates_an_entry_already_processing_without_a_start() -> None:
    api, state, info = await a_waiting_job("a")

    def undated(_b: dict[str, Any], s: BatchStatus) -> BatchStatus:
        s.jobs[1].status = JobState.processing
        return s

    await state.writer.update(NS, "a", undated)

    await state.reconciler.admitted([info], STARTED)

    assert (entry(api, "a", 1)["status"], entry(api, "a", 1)["startedAt"]) == ("processing", STARTED)
