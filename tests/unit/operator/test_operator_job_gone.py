"""``mapping.gone_entry``: what a job's entry becomes once its Job no longer exists."""

from __future__ import annotations

from test_operator_mapping import NOW, OUT, entry, job, pod

from audio_extract_common.batch_status import JobError
from audio_extract_common.results import WorkerResult
from audio_extract_operator.mapping import cancelled, gone_entry


def test_a_job_that_never_started_runs_again() -> None:
    assert gone_entry(entry("queued"), job(suspend=True), [], NOW) is None
    assert gone_entry(entry("queued"), None, [], NOW) is None  # found missing: nothing says it ran


def test_a_started_job_ends_failed_saying_its_job_was_deleted() -> None:
    for e in (
        gone_entry(entry("processing"), job(start="2026-01-21T12:00:05Z"), [], NOW),
        gone_entry(entry("processing"), None, [], NOW),
        # admitted, though the write saying so was lost: it may have run, so not again
        gone_entry(entry("queued"), job(start="2026-01-21T12:00:05Z"), [], NOW),
    ):
        assert e is not None and e.status == "failed" and e.completedAt == NOW
        assert e.error is not None and e.error.code == "INTERNAL_ERROR"
        assert e.error.message == "its Kubernetes Job was deleted before the job finished"
        assert e.currentStep is None and e.estimatedTimeRemaining is None


def test_a_finished_job_keeps_the_outcome_its_pods_still_show() -> None:
    done = pod(WorkerResult(output=OUT).to_message())
    ok = gone_entry(entry("processing"), job(condition="Complete"), [done], NOW)
    assert ok is not None and ok.status == "completed" and ok.outputFile == OUT
    bad = WorkerResult(error=JobError(code="NO_AUDIO_STREAM", message="no audio")).to_message()
    failed_job = job(condition="Failed", reason="PodFailurePolicy")
    failed = gone_entry(entry("processing"), failed_job, [pod(bad, 65)], NOW)
    assert failed is not None and failed.error is not None and failed.error.code == "NO_AUDIO_STREAM"
    late = gone_entry(entry("processing"), job(condition="Failed", reason="DeadlineExceeded"), [], NOW)
    assert late is not None and late.error is not None and late.error.code == "TIMEOUT"


def test_a_finished_job_without_pods_says_its_outcome_was_lost() -> None:
    e = gone_entry(entry("processing"), job(condition="Complete"), [], NOW)
    assert e is not None and e.status == "failed" and e.error is not None
    assert e.error.code == "INTERNAL_ERROR"
    assert e.error.message == "its Kubernetes Job was deleted before its outcome was recorded"
    assert e.error.details == "Job job-x had finished: Complete"


def test_terminal_entries_never_change() -> None:
    done = cancelled(entry("processing"), NOW)
    assert gone_entry(done, None, [], NOW) == done
