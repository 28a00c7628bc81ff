"""Job/Pod outcomes → job status entries → batch counts, phase and conditions; admission order."""

from __future__ import annotations

from audio_extract_common.batch_status import BatchStatus, JobError, JobState, JobStatus, OutputFile
from audio_extract_common.results import WorkerResult
from audio_extract_operator.admission import Candidate, to_admit
from audio_extract_operator.mapping import cancelled, job_entry, summarize

NOW = "2026-01-21T12:00:10Z"


def entry(status: str = "queued", index: int = 0) -> JobStatus:
    return JobStatus(
        index=index,
        jobId=f"job_0123456789abcd0{index + 1}",
        jobName=f"job-0123456789abcd0{index + 1}",
        status=status,
        createdAt="2026-01-21T12:00:00Z",
    )


def job(
    suspend: bool = False, condition: str | None = None, reason: str = "", start: str | None = None
) -> dict:
    status: dict = {}
    if condition:
        status["conditions"] = [
            {"type": "FailureTarget", "status": "True"},
            {"type": condition, "status": "True", "reason": reason},
        ]
    if start:
        status["startTime"] = start
    return {"metadata": {"name": "job-x"}, "spec": {"suspend": suspend}, "status": status}


def pod(message: str | None, exit_code: int = 0, finished: str = "2026-01-21T12:00:09Z") -> dict:
    terminated = {"exitCode": exit_code, "finishedAt": finished}
    if message is not None:
        terminated["message"] = message
    return {
        "metadata": {"name": "p", "creationTimestamp": "2026-01-21T12:00:01Z"},
        "status": {"containerStatuses": [{"name": "worker", "state": {"terminated": terminated}}]},
    }


OUT = OutputFile(
    filename="talk.mp3", path="job_0123456789abcd01/talk.mp3", size=1234, format="mp3", bitrate="192k"
)


def test_suspended_job_stays_queued() -> None:
    assert job_entry(entry(), job(suspend=True), [], NOW).status == "queued"


def test_unsuspended_job_is_processing_from_its_start_time() -> None:
    e = job_entry(entry(), job(start="2026-01-21T12:00:05Z"), [], NOW)
    assert e.status == "processing" and e.startedAt == "2026-01-21T12:00:05Z"
    assert e.currentStep == "downloading_video"


def test_complete_job_takes_output_from_termination_message() -> None:
    msg = WorkerResult(output=OUT).to_message()
    e = job_entry(entry("processing"), job(condition="Complete"), [pod(msg)], NOW)
    assert e.status == "completed" and e.outputFile == OUT and e.progress == 100 and e.completedAt == NOW


def test_complete_without_result_is_internal_error() -> None:
    e = job_entry(entry("processing"), job(condition="Complete"), [pod(None)], NOW)
    assert e.status == "failed" and e.error.code == "INTERNAL_ERROR"


def test_failed_job_takes_the_workers_error() -> None:
    msg = WorkerResult(error=JobError(code="NO_AUDIO_STREAM", message="no audio")).to_message()
    e = job_entry(
        entry("processing"), job(condition="Failed", reason="PodFailurePolicy"), [pod(msg, 65)], NOW
    )
    assert e.status == "failed" and e.error.code == "NO_AUDIO_STREAM"


def test_latest_pod_wins() -> None:
    old = WorkerResult(error=JobError(code="DOWNLOAD_FAILED", message="old")).to_message()
    new = WorkerResult(error=JobError(code="INVALID_VIDEO", message="new")).to_message()
    pods = [pod(old, 75, "2026-01-21T12:00:02Z"), pod(new, 65, "2026-01-21T12:00:08Z")]
    e = job_entry(entry("processing"), job(condition="Failed", reason="PodFailurePolicy"), pods, NOW)
    assert e.error.code == "INVALID_VIDEO"


def test_deadline_is_timeout() -> None:
    e = job_entry(entry("processing"), job(condition="Failed", reason="DeadlineExceeded"), [], NOW)
    assert e.error.code == "TIMEOUT"


def test_pod_ended_without_result_is_internal_error() -> None:
    e = job_entry(
        entry("processing"),
        job(condition="Failed", reason="BackoffLimitExceeded"),
        [pod("not json", 137)],
        NOW,
    )
    assert e.error.code == "INTERNAL_ERROR"


def test_a_pod_killed_over_its_memory_limit_fails_with_out_of_memory() -> None:
    oom = pod(None, exit_code=137)
    oom["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] = "OOMKilled"
    oom["spec"] = {"containers": [{"name": "worker", "resources": {"limits": {"memory": "96Mi"}}}]}
    e = job_entry(entry("processing"), job(condition="Failed", reason="BackoffLimitExceeded"), [oom], NOW)
    assert e.status == "failed" and e.error is not None
    assert e.error.code == "EXTRACTION_FAILED"
    assert e.error.message == "the worker ran out of memory"
    assert e.error.details == "OOMKilled: over its memory limit of 96Mi; Job failed: BackoffLimitExceeded"


def test_terminal_entries_never_change() -> None:
    done = cancelled(entry("processing"), NOW)
    assert done.status == "cancelled" and done.error.code == "CANCELLED"
    msg = WorkerResult(output=OUT).to_message()
    assert job_entry(done, job(condition="Complete"), [pod(msg)], NOW) == done
    assert cancelled(done, "2030-01-01T00:00:00Z") == done


def _conds(s: BatchStatus) -> dict[str, str]:
    return {c.type: c.status for c in s.conditions}


def test_summary_counts_phase_and_conditions() -> None:
    s = summarize(BatchStatus(jobs=[entry(), entry(index=1)]), NOW, 1)
    assert (s.phase, s.total, s.queued) == ("Queued", 2, 2)
    assert _conds(s) == {"Accepted": "True", "Running": "False", "Complete": "False", "Failed": "False"}
    s.jobs[0].status = JobState.processing
    s = summarize(s, NOW, 1)
    assert s.phase == "Running" and _conds(s)["Running"] == "True" and s.processing == 1
    s.jobs[0].status = JobState.completed
    s.jobs[1].status = JobState.completed
    later = "2026-01-21T12:01:00Z"
    s2 = summarize(s, later, 1)
    assert s2.phase == "Succeeded" and _conds(s2)["Complete"] == "True" and _conds(s2)["Failed"] == "False"
    assert s2.completedAt == later
    complete = next(c for c in s2.conditions if c.type == "Complete")
    accepted = next(c for c in s2.conditions if c.type == "Accepted")
    assert complete.lastTransitionTime == later and accepted.lastTransitionTime == NOW


def test_summary_failed_when_any_job_failed_or_cancelled() -> None:
    s = summarize(BatchStatus(jobs=[entry("completed"), cancelled(entry(index=1), NOW)]), NOW, 2)
    assert s.phase == "Failed" and s.failed == 1 and s.completed == 1
    assert _conds(s)["Complete"] == "True" and _conds(s)["Failed"] == "True"


def test_admission_high_first_fifo_within_priority_and_limit() -> None:
    c = [
        Candidate("ns", "job-aaaaaaaaaaaaaa01", "low", "2026-01-01T00:00:00Z", 0),
        Candidate("ns", "job-bbbbbbbbbbbbbb01", "normal", "2026-01-01T00:00:02Z", 0),
        Candidate("ns", "job-cccccccccccccc02", "high", "2026-01-01T00:00:03Z", 1),
        Candidate("ns", "job-cccccccccccccc01", "high", "2026-01-01T00:00:03Z", 0),
        Candidate("ns", "job-dddddddddddddd01", "normal", "2026-01-01T00:00:01Z", 0),
    ]
    assert [x.name for x in to_admit(c, running=0, limit=4)] == [
        "job-cccccccccccccc01",
        "job-cccccccccccccc02",
        "job-dddddddddddddd01",
        "job-bbbbbbbbbbbbbb01",
    ]
    assert [x.name for x in to_admit(c, running=1, limit=2)] == ["job-cccccccccccccc01"]
    assert to_admit(c, running=2, limit=2) == []
    assert to_admit(c, running=5, limit=2) == []
