"""Worker progress reports → a job's status entry: whole-job progress, forward only."""

from __future__ import annotations

import itertools

from audio_extract_common.batch_status import BatchStatus, InputFile, JobState, JobStatus, Step
from audio_extract_common.results import ProgressReport
from audio_extract_operator.progress import apply_reports, job_progress

JOB_ID = "job_0123456789abcd01"
ORDER = list(Step)


def running(step: Step | None = None, progress: int = 0) -> BatchStatus:
    return BatchStatus(
        jobs=[
            JobStatus(
                index=0, jobId=JOB_ID, jobName="x", status="processing", currentStep=step, progress=progress
            )
        ]
    )


def rep(step: Step, percent: int, **extra: object) -> ProgressReport:
    return ProgressReport(jobId=JOB_ID, step=step, progress=percent, **extra)  # type: ignore[arg-type]


def apply(status: BatchStatus, report: ProgressReport) -> BatchStatus:
    return apply_reports(status, {0: report}) or status


def test_job_progress_rises_through_the_steps_and_leaves_100_for_completion() -> None:
    seq = [job_progress(s, p) for s in Step for p in (0, 1, 50, 99, 100)]
    assert seq == sorted(seq)
    assert seq[0] == 0 and max(seq) == 99


def test_a_new_step_at_0_percent_does_not_drop_the_jobs_progress() -> None:
    """The flake: extracting_audio 35 % then finalizing 0 % showed progress 35 → 0."""
    status = apply(running(Step.downloading_video), rep(Step.extracting_audio, 35))
    before = status.jobs[0].progress
    assert before > 0
    after = apply(status, rep(Step.finalizing, 0)).jobs[0]
    assert after.currentStep == Step.finalizing
    assert after.progress >= before


def test_a_late_report_of_an_earlier_step_changes_neither_step_nor_progress() -> None:
    status = apply(running(Step.downloading_video), rep(Step.extracting_audio, 60, estimatedTimeRemaining=4))
    seen = status.jobs[0].model_copy()
    assert apply_reports(status.model_copy(deep=True), {0: rep(Step.downloading_video, 100)}) is None
    late = rep(
        Step.analyzing_video, 100, inputFile=InputFile(name="v.mp4", size=1, duration=2.0, format="mp4")
    )
    after = apply(status, late).jobs[0]
    assert (after.currentStep, after.progress, after.estimatedTimeRemaining) == (
        seen.currentStep,
        seen.progress,
        seen.estimatedTimeRemaining,
    )
    assert after.inputFile is not None and after.inputFile.name == "v.mp4"


def test_any_report_order_gives_forward_steps_and_rising_progress() -> None:
    """Whatever subset and order of one attempt's reports lands, status never goes backwards."""
    reports = [rep(s, p) for s in Step for p in (0, 35, 100)]
    for order in itertools.islice(itertools.permutations(reports, 5), 0, None, 97):
        status = running(Step.downloading_video)
        trail = [(ORDER.index(Step.downloading_video), 0)]
        for r in order:
            j = apply(status, r).jobs[0]
            trail.append((ORDER.index(Step(j.currentStep)), j.progress))  # type: ignore[arg-type]
        assert [t[0] for t in trail] == sorted(t[0] for t in trail), order
        assert [t[1] for t in trail] == sorted(t[1] for t in trail), order


def test_a_report_leaves_a_queued_entry_to_its_jobs_start() -> None:
    """Early (before the admission write, which sets startedAt) or late (from a pod Kueue
    preempted, the job waiting again): either way the entry stays as the Job's state has it."""
    status = BatchStatus(jobs=[JobStatus(index=0, jobId=JOB_ID, jobName="x", queueReason="Preempted")])
    assert apply_reports(status, {0: rep(Step.downloading_video, 50)}) is None
    assert status.jobs[0].status == JobState.queued and status.jobs[0].progress == 0


def test_reports_never_touch_terminal_entries() -> None:
    status = BatchStatus(
        jobs=[JobStatus(index=0, jobId=JOB_ID, jobName="x", status="completed", progress=100)]
    )
    assert apply_reports(status, {0: rep(Step.extracting_audio, 10)}) is None
