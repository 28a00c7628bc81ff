"""The status writer under load: changes that wait for a batch's write go together in the next one,
and a write needs no read when the writer knows the batch's latest object. Neither may lose a
change or overwrite someone else's: the resourceVersion precondition still guards every write."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from operator_fakeapi import NS, FakeApi

from audio_extract_common.batch_status import BatchStatus, JobState, JobStatus
from audio_extract_operator.reconcile import JOB_CREATIONS
from audio_extract_operator.registry import Registry
from audio_extract_operator.state import OperatorState
from audio_extract_operator.statuswriter import StatusWriter
from support.operator_settings import operator_settings


class SlowApi(FakeApi):
    """Each request takes a little while, as over a network: writers queue up meanwhile."""

    async def call(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        await asyncio.sleep(0.01)
        return await super().call(method, path, body, **kw)


def entries(jobs: int) -> Any:
    def change(_b: Any, s: BatchStatus) -> BatchStatus:
        s.jobs = [JobStatus(index=i, jobId=f"job_{i}", jobName=f"job-{i}") for i in range(jobs)]
        return s

    return change


def start(index: int) -> Any:
    def change(_b: Any, s: BatchStatus) -> BatchStatus:
        s.jobs[index].status = JobState.processing
        return s

    return change


def waits(index: int) -> Any:
    def change(_b: Any, s: BatchStatus) -> BatchStatus:
        s.jobs[index].queueReason = "waiting for quota"
        return s

    return change


def status_writes(api: FakeApi) -> list[str]:
    return [p for m, p, _ in api.calls if m == "PATCH" and p.endswith("/status")]


def batch_reads(api: FakeApi) -> list[str]:
    return [p for m, p, _ in api.calls if m == "GET" and "/extractionbatches/" in p]


async def written(api: FakeApi, jobs: int) -> StatusWriter:
    """A writer that has written batch "b" with ``jobs`` entries; the API's calls cleared."""
    writer = StatusWriter(api, operator_settings(progress__port=0), Registry())
    api.add_batch("b", jobs=jobs)
    await writer.update(NS, "b", entries(jobs))
    api.calls.clear()
    return writer


async def test_changes_waiting_for_a_write_go_together_in_the_next() -> None:
    api = SlowApi()
    writer = await written(api, 10)

    results = await asyncio.gather(*(writer.update(NS, "b", start(i)) for i in range(10)))

    stored = api.get("extractionbatches", NS, "b")["status"]
    assert [j["status"] for j in stored["jobs"]] == ["processing"] * 10
    assert len(status_writes(api)) == 2  # the first change alone, then the nine that waited for it
    assert batch_reads(api) == []
    for i, result in enumerate(results):  # each caller sees its own change written
        assert result is not None and result.jobs[i].status == JobState.processing
    events = [e for e in api.events if e["reason"] == "JobStarted"]
    assert [e["message"].count("job_") for e in events] == [1, 9]


async def test_a_stale_copy_costs_a_read_and_loses_nothing() -> None:
    api = FakeApi()
    writer = await written(api, 2)
    # Others change the object after our last write: a status field (as the webhook driver does)
    # and the spec (as the API's cancel does).
    jobs = api.get("extractionbatches", NS, "b")["status"]["jobs"]
    jobs[1]["queueReason"] = "waiting for quota"
    api.edit("extractionbatches", NS, "b", {"status": {"jobs": jobs}, "spec": {"cancelJobs": [1]}})
    api.calls.clear()
    seen: list[list[int]] = []

    def look(b: dict[str, Any], s: BatchStatus) -> BatchStatus:
        seen.append(list(b["spec"].get("cancelJobs") or []))
        return start(0)(b, s)

    await writer.update(NS, "b", look)

    assert [m for m, p, _ in api.calls if "/extractionbatches/" in p] == ["PATCH", "GET", "PATCH"]
    assert seen == [[], [1]]  # tried on the stale copy, refused, written on the fresh one
    stored = api.get("extractionbatches", NS, "b")
    assert stored["status"]["jobs"][1]["queueReason"] == "waiting for quota"
    assert stored["status"]["jobs"][0]["status"] == "processing"


async def test_a_copy_the_watch_shows_spares_the_read_and_an_older_one_is_ignored() -> None:
    api = FakeApi()
    writer = await written(api, 2)
    older = api.get("extractionbatches", NS, "b")
    newer = api.edit("extractionbatches", NS, "b", {"metadata": {"annotations": {"kopf": "x"}}})
    writer.observe(newer)
    writer.observe(older)  # a late echo of the watch
    api.calls.clear()

    await writer.update(NS, "b", start(0))

    assert [m for m, p, _ in api.calls if "/extractionbatches/" in p] == ["PATCH"]


async def test_fresh_reads_the_object_even_when_a_copy_is_known() -> None:
    api = FakeApi()
    writer = await written(api, 2)

    await writer.update(NS, "b", start(1), fresh=True)

    assert [m for m, p, _ in api.calls if "/extractionbatches/" in p] == ["GET", "PATCH"]


class PooledApi(FakeApi):
    """Requests share a pool of connections, as through the operator's client (100), and each
    takes a while, as on a busy API server."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.pool = asyncio.Semaphore(100)
        self.creating = self.most_creating = 0

    async def call(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        creating = method == "POST" and path.endswith("/jobs")
        async with self.pool:
            self.creating += creating
            self.most_creating = max(self.most_creating, self.creating)
            try:
                await asyncio.sleep(self.seconds)
                return await super().call(method, path, body, **kw)
            finally:
                self.creating -= creating


async def test_a_burst_of_creations_leaves_connections_for_the_status_of_running_work() -> None:
    api = PooledApi(seconds=0.2)
    state = OperatorState(operator_settings(progress__port=0, admission__create_concurrency=40), api)
    running = api.add_batch("running", jobs=2)
    await state.writer.update(NS, "running", entries(2))
    burst = [api.add_batch(f"b{i}", jobs=10) for i in range(40)]
    creating = asyncio.gather(*(state.reconciler.batch(b) for b in burst))
    await asyncio.sleep(0.05)  # the burst has taken what it may of the pool

    t0 = time.monotonic()
    await state.writer.update(NS, "running", waits(0))  # a job of running work moves on
    took = time.monotonic() - t0
    await creating

    assert len(api.names("jobs")) == 400
    assert api.most_creating <= JOB_CREATIONS < 100
    assert running["metadata"]["uid"] == api.get("extractionbatches", NS, "running")["metadata"]["uid"]
    # one request's time (0.2 s): it did not queue behind the burst's creations
    assert took < 0.35, took
