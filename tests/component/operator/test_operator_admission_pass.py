"""An admission pass over a burst: every chosen Job is unsuspended, and each batch's admitted jobs
are recorded in its status in one write, not one write per Job (which held a burst of thousands
to a few admissions a second). The operator's reconciler, status writer and loops run unchanged
against the in-memory API server (``operator_fakeapi``)."""

from __future__ import annotations

from typing import Any

import pytest
from operator_fakeapi import NS, FakeApi

from audio_extract_common.kube import Transient
from audio_extract_operator import loops
from audio_extract_operator.state import OperatorState
from support.operator_settings import operator_settings


async def test_a_burst_is_admitted_with_one_status_write_per_batch() -> None:
    api = FakeApi()
    settings = operator_settings(admission__max_running=25, progress__port=0)
    state = OperatorState(settings, api)
    for name in ("a", "b", "c"):
        body = api.add_batch(name, jobs=10)
        state.registry.observe_batch(body)
        await state.reconciler.batch(body)
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


async def test_a_batch_whose_first_status_write_failed_keeps_its_jobs_until_their_entries_exist() -> None:
    # Admitted without an entry, a job would run and end with nothing in status to record it in
    # (its outcome found only when a watch lists the Jobs again, minutes later).
    api = FakeApi()
    settings = operator_settings(admission__max_running=5, progress__port=0)
    state = OperatorState(settings, api)
    body = api.add_batch("a", jobs=2)
    state.registry.observe_batch(body)
    api.fail = lambda m, p, q: Transient(503, "ServiceUnavailable", "") if p.endswith("/status") else None
    with pytest.raises(Transient):
        await state.reconciler.batch(body)  # its Jobs exist; its status does not
    assert len(api.names("jobs")) == 2

    assert await loops.admission_pass(api, settings, state.registry, state.reconciler) == 0
    assert all(api.get("jobs", NS, n)["spec"]["suspend"] for n in api.names("jobs"))

    api.fail = None
    await state.reconciler.batch(body)  # kopf's next attempt
    assert await loops.admission_pass(api, settings, state.registry, state.reconciler) == 2
    entries = api.get("extractionbatches", NS, "a")["status"]["jobs"]
    assert [e["status"] for e in entries] == ["processing", "processing"]
