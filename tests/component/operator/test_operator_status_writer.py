"""The status writer under load: changes that wait for a batch's write go together in the next one,
and a write needs no read when the writer knows the batch's latest object. Neither may lose a
change or overwrite someone else's: the resourceVersion precondition still guards every write."""

from __future__ import annotations

import asyncio
from typing import Any

from operator_fakeapi import NS, FakeApi

from audio_extract_common.batch_status import BatchStatus, JobState, JobStatus
from audio_extract_operator.registry import Registry
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


def status_writes(api: FakeApi) -> list[str]:
    return [p for m, p, _ in api.calls if m == "PATCH" and p.endswith("/status")]


def batch_reads(api: FakeApi) -> list[str]:
    return [p for m, p, _ in api.calls if m == "GET" and "/extractionbatches/" in p]


async def test_changes_waiting_for_a_write_go_together_in_the_next() -> None:
    api = SlowApi()
    writer = StatusWriter(api, operator_settings(progress__port=0), Registry())
    api.add_batch("b", jobs=10)
    await writer.update(NS, "b", entries(10))
    api.calls.clear()

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
    writer = StatusWriter(api, operator_settings(progress__port=0), Registry())
    api.add_batch("b", jobs=2)
    await writer.update(NS, "b", entries(2))
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
    writer = StatusWriter(api, operator_settings(progress__port=0), Registry())
    api.add_batch("b", jobs=2)
    await writer.update(NS, "b", entries(2))
    older = api.get("extractionbatches", NS, "b")
    newer = api.edit("extractionbatches", NS, "b", {"metadata": {"annotations": {"kopf": "x"}}})
    writer.observe(newer)
    writer.observe(older)  # a late echo of the watch
    api.calls.clear()

    await writer.update(NS, "b", start(0))

    assert [m for m, p, _ in api.calls if "/extractionbatches/" in p] == ["PATCH"]


async def test_fresh_reads_the_object_even_when_a_copy_is_known() -> None:
    api = FakeApi()
    writer = StatusWriter(api, operator_settings(progress__port=0), Registry())
    api.add_batch("b", jobs=2)
    await writer.update(NS, "b", entries(2))
    api.calls.clear()

    await writer.update(NS, "b", start(1), fresh=True)

    assert [m for m, p, _ in api.calls if "/extractionbatches/" in p] == ["GET", "PATCH"]
