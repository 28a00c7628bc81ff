"""A job's Job deleted by hand, by its TTL before its outcome was recorded, or while the operator was
not watching: the entry never stays queued/processing for ever. A job that never started gets its
Job again; one that started ends ``failed`` with ``INTERNAL_ERROR`` saying its Job was deleted,
unless the outcome can still be read (the Job finished and its pods are still there).

The operator's handlers, reconciler, status writer and loops run unchanged; only the API server is
the in-memory fake (``operator_fakeapi``)."""

from __future__ import annotations

from typing import Any

import kopf
from operator_fakeapi import NS, FakeApi, job_name

from audio_extract_common.batch_status import JobError, OutputFile
from audio_extract_common.results import WorkerResult
from audio_extract_operator import handlers, loops
from audio_extract_operator.state import OperatorState
from support.operator_settings import operator_settings

OUT = OutputFile(filename="a.wav", path="job_x/a.wav", size=10, format="wav")


class Operator:
    """The operator's parts around one fake API, as ``handlers.startup`` wires them."""

    def __init__(self, api: FakeApi, **settings: Any) -> None:
        self.api = api
        self.settings = operator_settings(**{"admission__max_running": 1, "progress__port": 0, **settings})
        self.memo = kopf.Memo()
        self.state = OperatorState(self.settings, api)
        self.memo.state = self.state

    async def create(self, name: str, jobs: int = 1, **spec: Any) -> dict[str, Any]:
        body = self.api.add_batch(name, jobs, **spec)
        self.state.registry.observe_batch(body)
        await self.state.reconciler.batch(body)
        return body

    async def admit(self) -> None:
        await loops.admission_pass(self.api, self.settings, self.state.registry, self.state.reconciler)

    async def job_event(self, type_: str, body: dict[str, Any]) -> None:
        await handlers.job_event(type=type_, body=body, memo=self.memo)

    async def resync(self) -> None:
        await loops.retention_pass(self.api, self.settings, self.state.registry, self.state.reconciler)

    def entries(self, name: str) -> list[dict[str, Any]]:
        return self.api.get("extractionbatches", NS, name)["status"]["jobs"]


async def test_a_queued_jobs_job_deleted_by_hand_is_created_again() -> None:
    api = FakeApi()
    op = Operator(api)
    body = await op.create("b", jobs=2)
    first = api.get("jobs", NS, job_name(body, 1))
    gone = api.delete_by_hand("jobs", NS, job_name(body, 1))
    await op.job_event("DELETED", gone)
    again = api.get("jobs", NS, job_name(body, 1))
    assert again is not None, "the Job of a job that never started must be created again"
    assert again["metadata"]["uid"] != first["metadata"]["uid"] and again["spec"]["suspend"] is True
    assert [e["status"] for e in op.entries("b")] == ["queued", "queued"]
    assert (NS, job_name(body, 1)) in op.state.registry.jobs  # admission counts it again


async def test_a_started_jobs_job_deleted_by_hand_ends_its_entry_with_an_error() -> None:
    api = FakeApi()
    op = Operator(api)
    body = await op.create("b", jobs=2)
    await op.admit()  # job 0 runs (admission__max_running=1)
    assert [e["status"] for e in op.entries("b")] == ["processing", "queued"]
    await op.job_event("DELETED", api.delete_by_hand("jobs", NS, job_name(body, 0)))
    entry = op.entries("b")[0]
    assert entry["status"] == "failed", entry
    assert entry["error"]["code"] == "INTERNAL_ERROR"
    assert "deleted" in entry["error"]["message"] and entry["completedAt"]
    assert api.get("jobs", NS, job_name(body, 0)) is None  # not run a second time
    # the slot is free: the other job is admitted, and once it ends the batch is finished
    await op.admit()
    assert op.entries("b")[1]["status"] == "processing"
    done = api.finish_job(NS, job_name(body, 1), "Complete", WorkerResult(output=OUT))
    await op.job_event("MODIFIED", done)
    status = api.get("extractionbatches", NS, "b")["status"]
    assert status["phase"] == "Failed" and status["completedAt"] and status["processing"] == 0


async def test_a_finished_job_deleted_before_its_outcome_was_recorded_keeps_a_readable_outcome() -> None:
    api = FakeApi()
    op = Operator(api, admission__max_running=2)
    body = await op.create("b", jobs=2)
    await op.admit()
    # both finish while nobody maps them; the TTL controller deletes the Jobs (pods of the first
    # are still there, those of the second already gone)
    api.finish_job(NS, job_name(body, 0), "Complete", WorkerResult(output=OUT))
    api.finish_job(
        NS,
        job_name(body, 1),
        "Failed",
        WorkerResult(error=JobError(code="DOWNLOAD_FAILED", message="404")),
        reason="PodFailurePolicy",
    )
    api.delete_by_hand("pods", NS, f"{job_name(body, 1)}-pod")
    await op.job_event("DELETED", api.delete_by_hand("jobs", NS, job_name(body, 0)))
    await op.job_event("DELETED", api.delete_by_hand("jobs", NS, job_name(body, 1)))
    first, second = op.entries("b")
    assert first["status"] == "completed" and first["outputFile"]["filename"] == "a.wav"
    assert second["status"] == "failed" and second["error"]["code"] == "INTERNAL_ERROR"
    assert "deleted before its outcome was recorded" in second["error"]["message"]
    assert "Failed" in second["error"]["details"]


async def test_the_resync_finds_jobs_deleted_while_the_operator_was_not_watching() -> None:
    api = FakeApi()
    op = Operator(api)
    body = await op.create("b", jobs=2)
    await op.admit()
    api.delete_by_hand("jobs", NS, job_name(body, 0))  # processing
    api.delete_by_hand("jobs", NS, job_name(body, 1))  # queued
    # a new process: its registry starts from the listing, no DELETED event ever comes
    restarted = Operator(api)
    await loops.sync_jobs(api, restarted.settings, restarted.state.registry)
    await restarted.resync()
    first, second = restarted.entries("b")
    assert first["status"] == "failed" and first["error"]["code"] == "INTERNAL_ERROR"
    assert second["status"] == "queued" and api.get("jobs", NS, job_name(body, 1)) is not None


async def test_the_resync_forgets_jobs_whose_deletion_event_was_missed() -> None:
    """A watch that reconnects lists what exists but never reports what vanished meanwhile: the
    registry keeps a running Job that is gone, which holds an admission slot for ever."""
    api = FakeApi()
    op = Operator(api)
    body = await op.create("b", jobs=2)
    await op.admit()
    api.delete_by_hand("jobs", NS, job_name(body, 0))  # the DELETED event is lost
    assert op.state.registry.running_count() == 1
    await op.resync()
    assert op.state.registry.running_count() == 0
    assert op.entries("b")[0]["status"] == "failed"
    await op.admit()
    assert op.entries("b")[1]["status"] == "processing"


async def test_a_cancelled_jobs_deletion_is_left_to_the_cancellation() -> None:
    api = FakeApi()
    op = Operator(api)
    body = await op.create("b", jobs=2)
    # the spec says cancel job 1; its Job's DELETED event arrives before the cancellation's write
    api.edit("extractionbatches", NS, "b", {"spec": {"cancelJobs": [1]}})
    await op.job_event("DELETED", api.delete_by_hand("jobs", NS, job_name(body, 1)))
    await op.resync()
    assert api.get("jobs", NS, job_name(body, 1)) is None
    assert op.entries("b")[1]["status"] == "queued"
    await op.state.reconciler.batch(api.get("extractionbatches", NS, "b"))
    assert op.entries("b")[1]["status"] == "cancelled"


async def test_jobs_of_a_batch_being_deleted_are_not_created_again() -> None:
    api = FakeApi()
    op = Operator(api)
    body = await op.create("b", jobs=1)
    # foreground deletion: the batch stays, marked, until the garbage collector removed its Jobs
    api.edit("extractionbatches", NS, "b", {"metadata": {"deletionTimestamp": "2026-01-21T12:01:00Z"}})
    await op.job_event("DELETED", api.delete_by_hand("jobs", NS, job_name(body, 0)))
    await op.resync()
    assert api.get("jobs", NS, job_name(body, 0)) is None
    assert op.entries("b")[0]["status"] == "queued"


async def test_a_late_deleted_event_of_a_replaced_job_changes_nothing() -> None:
    api = FakeApi()
    op = Operator(api)
    body = await op.create("b", jobs=1)
    old = api.delete_by_hand("jobs", NS, job_name(body, 0))
    await op.resync()  # finds it gone first and creates it again
    await op.admit()
    assert op.entries("b")[0]["status"] == "processing"
    await op.job_event("DELETED", old)  # the watch delivers the old Job's deletion late
    assert op.entries("b")[0]["status"] == "processing"
    assert api.get("jobs", NS, job_name(body, 0)) is not None


async def test_resuming_a_batch_never_runs_a_started_job_again() -> None:
    """kopf's resume handler runs for every batch at start-up: a started job whose Job is gone is
    the resync's to end, not a reason to run the extraction a second time."""
    api = FakeApi()
    op = Operator(api)
    body = await op.create("b", jobs=1)
    await op.admit()
    api.delete_by_hand("jobs", NS, job_name(body, 0))
    restarted = Operator(api)
    await restarted.state.reconciler.batch(api.get("extractionbatches", NS, "b"))
    assert api.get("jobs", NS, job_name(body, 0)) is None
    await restarted.resync()
    assert restarted.entries("b")[0]["status"] == "failed"
