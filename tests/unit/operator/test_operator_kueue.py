"""Kueue mode: a preempted job back in the queue, why a Workload waits, a loop that survives a failure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from audio_extract_common.batch_status import JobState, JobStatus
from audio_extract_operator.kueue import WAITING, kueue_loop, owner_job, waiting_reason
from audio_extract_operator.mapping import PREEMPTED, job_entry
from audio_extract_operator.registry import Registry
from support.operator_settings import operator_settings

NOW = "2026-01-21T12:00:10Z"
QUOTA = (
    "couldn't assign flavors to pod set main: insufficient unused quota for cpu in flavor default, "
    "500m more needed"
)


def running_entry() -> JobStatus:
    return JobStatus(
        index=0,
        jobId="job_0123456789abcd01",
        jobName="job-0123456789abcd01",
        status=JobState.processing,
        startedAt="2026-01-21T12:00:02Z",
        currentStep="extracting_audio",
        progress=40,
    )


def job(suspend: bool, kueue: bool) -> dict[str, Any]:
    labels = {"kueue.x-k8s.io/queue-name": "media"} if kueue else {}
    return {"metadata": {"name": "job-x", "labels": labels}, "spec": {"suspend": suspend}, "status": {}}


def test_a_job_kueue_suspends_again_is_queued_to_run_again() -> None:
    e = job_entry(running_entry(), job(suspend=True, kueue=True), [], NOW)
    assert e.status == JobState.queued
    assert (e.currentStep, e.progress, e.startedAt, e.error) == (None, 0, None, None)
    assert e.queueReason == PREEMPTED
    again = job_entry(e, job(suspend=False, kueue=True), [], NOW)
    assert again.status == JobState.processing and again.queueReason is None


def test_without_kueue_a_suspended_job_keeps_its_entry() -> None:
    # the operator's own admission never suspends a running Job: a stale event must not requeue it
    e = running_entry()
    assert job_entry(e, job(suspend=True, kueue=False), [], NOW) == e


def workload(*conditions: dict[str, str], owner: str = "job-0123456789abcd01") -> dict[str, Any]:
    return {
        "metadata": {
            "name": "job-job-0123456789abcd01-1a2b3",
            "namespace": "media",
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": owner}],
        },
        "status": {"conditions": list(conditions)},
    }


def test_a_pending_workload_waits_for_the_quota_kueue_names() -> None:
    pending = workload({"type": "QuotaReserved", "status": "False", "reason": "Pending", "message": QUOTA})
    assert waiting_reason(pending) == QUOTA
    assert owner_job(pending) == "job-0123456789abcd01"


def test_an_evicted_workload_says_why_before_its_quota_state() -> None:
    evicted = workload(
        {"type": "QuotaReserved", "status": "False", "reason": "Pending", "message": QUOTA},
        {
            "type": "Evicted",
            "status": "True",
            "reason": "Preempted",
            "message": "Preempted to accommodate a workload",
        },
    )
    assert waiting_reason(evicted) == "Preempted to accommodate a workload"


def test_admitted_or_finished_workloads_do_not_wait() -> None:
    admitted = workload(
        {"type": "QuotaReserved", "status": "True", "message": "Quota reserved"},
        {"type": "Admitted", "status": "True", "message": "The workload is admitted"},
    )
    assert waiting_reason(admitted) is None
    assert waiting_reason(workload({"type": "Finished", "status": "True", "message": "done"})) is None
    assert waiting_reason(workload()) == WAITING  # just made: Kueue has not looked at it yet
    assert (
        owner_job({"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p"}]}})
        is None
    )


class Workloads:
    """Lists no Workloads; the first list fails with an error no pass expects."""

    def __init__(self) -> None:
        self.lists = 0

    async def pages(self, path: str, limit: int) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        self.lists += 1
        if self.lists == 1:
            raise ValueError("not a Workload list")
        yield [], "1"


async def test_the_loop_outlives_a_pass_that_fails_unexpectedly() -> None:
    kube, registry = Workloads(), Registry()
    registry.jobs_synced = True
    settings = operator_settings(admission__interval=0.01, admission__kueue_queue="media")
    loop = asyncio.create_task(kueue_loop(kube, settings, registry, None))  # type: ignore[arg-type]
    try:
        for _ in range(100):
            if kube.lists >= 2 or loop.done():
                break
            await asyncio.sleep(0.01)
        assert not loop.done() and kube.lists >= 2
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
