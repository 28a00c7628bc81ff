"""Pure mappings from what Kubernetes reports to the resource's status.

``job_entry`` turns one Job (and its pods) into the job's status entry; ``summarize`` derives the
batch's counts, phase and conditions from the entries. Terminal entries never change again, so a
late or repeated event cannot undo an outcome.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import ValidationError

from audio_extract_common.batch_status import (
    TERMINAL_STATES,
    BatchStatus,
    Condition,
    ErrorCode,
    JobError,
    JobState,
    JobStatus,
    Phase,
    Step,
)
from audio_extract_common.results import WorkerResult

from .jobs import CONTAINER, KUEUE_QUEUE_LABEL


def _condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_ and c.get("status") == "True":
            return c
    return None


def job_finished(job: Mapping[str, Any]) -> str | None:
    """``"Complete"`` or ``"Failed"`` once the Job is terminal (interim conditions don't count)."""
    for type_ in ("Complete", "Failed"):
        if _condition(job, type_):
            return type_
    return None


def job_finished_at(job: Mapping[str, Any]) -> str | None:
    """When the Job became terminal (its Complete or Failed condition's transition time)."""
    for type_ in ("Complete", "Failed"):
        if (c := _condition(job, type_)) is not None:
            return c.get("lastTransitionTime")
    return None


def job_running(job: Mapping[str, Any]) -> bool:
    """A pod of the Job runs its container, rather than waiting to be scheduled or started: the
    worker has no readiness probe, so a pod is ready once its container started (``active`` also
    counts pending pods; it stands in where a server does not report ``ready``)."""
    status = job.get("status") or {}
    return bool(status["ready"] if "ready" in status else status.get("active"))


def job_suspended(job: Mapping[str, Any]) -> bool:
    return bool((job.get("spec") or {}).get("suspend"))


PREEMPTED = "preempted by Kueue: waits to run again"


def kueue_managed(job: Mapping[str, Any]) -> bool:
    """Kueue, not the operator, admits the Job, and may suspend it again to preempt it."""
    return KUEUE_QUEUE_LABEL in ((job.get("metadata") or {}).get("labels") or {})


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == CONTAINER:
            return (cs.get("state") or {}).get("terminated")
    return None


def pod_result(pod: Mapping[str, Any]) -> WorkerResult | None:
    """The worker's result from a pod's termination message, if it left a readable one."""
    terminated = _terminated(pod)
    message = (terminated or {}).get("message")
    if not message:
        return None
    try:
        result = WorkerResult.model_validate_json(message)
    except ValidationError:
        return None
    return result if (result.output is None) != (result.error is None) else None


def _oom_limit(pods: Iterable[Mapping[str, Any]]) -> str | None:
    """The worker's memory limit, if one of its pods was killed for going over it."""
    for pod in pods:
        if (_terminated(pod) or {}).get("reason") == "OOMKilled":
            for container in (pod.get("spec") or {}).get("containers") or []:
                if container.get("name") == CONTAINER:
                    return ((container.get("resources") or {}).get("limits") or {}).get("memory", "unknown")
            return "unknown"
    return None


def _latest_first(pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    def finished_at(pod: Mapping[str, Any]) -> str:
        return (_terminated(pod) or {}).get("finishedAt") or pod["metadata"].get("creationTimestamp") or ""

    return sorted(pods, key=finished_at, reverse=True)


def job_entry(
    entry: JobStatus, job: Mapping[str, Any] | None, pods: Iterable[Mapping[str, Any]], now: str
) -> JobStatus:
    """The job's status entry after observing its Job and pods (``entry`` unchanged when terminal)."""
    if entry.status in TERMINAL_STATES or job is None:
        return entry
    finished = job_finished(job)
    if finished is None:
        if job_suspended(job):
            if entry.status == JobState.processing and kueue_managed(job):
                # Kueue took its quota back (preemption): the pod is gone, the job waits to run again
                return entry.model_copy(
                    update={
                        "status": JobState.queued,
                        "currentStep": None,
                        "progress": 0,
                        "estimatedTimeRemaining": None,
                        "startedAt": None,
                        "queueReason": PREEMPTED,
                    }
                )
            return entry
        if entry.status == JobState.queued:
            started = (job.get("status") or {}).get("startTime") or now
            return entry.model_copy(
                update={
                    "status": JobState.processing,
                    "queueReason": None,
                    "startedAt": entry.startedAt or started,
                    "currentStep": entry.currentStep or Step.downloading_video,
                }
            )
        return entry

    pods = _latest_first(pods)
    update: dict[str, Any] = {
        "completedAt": now,
        "estimatedTimeRemaining": None,
        "currentStep": None,
        "queueReason": None,
    }
    results = [r for r in (pod_result(p) for p in pods) if r is not None]
    if finished == "Complete":
        ok = next((r for r in results if r.output is not None), None)
        if ok is not None:
            update.update(
                status=JobState.completed,
                progress=100,
                outputFile=ok.output,
                error=None,
                currentStep=Step.finalizing,
            )
            if ok.inputFile is not None:
                update["inputFile"] = ok.inputFile
            if ok.timings is not None:
                update["timings"] = ok.timings
            return entry.model_copy(update=update)
        update.update(
            status=JobState.failed,
            error=JobError(
                code=ErrorCode.INTERNAL_ERROR, message="the worker finished without leaving a result"
            ),
        )
        return entry.model_copy(update=update)

    reason = _condition(job, "Failed").get("reason")  # type: ignore[union-attr]
    failed = next((r for r in results if r.error is not None), None)
    if reason == "DeadlineExceeded":
        error = JobError(
            code=ErrorCode.TIMEOUT,
            message="the job ran past its deadline",
            details=(failed.error.message if failed and failed.error else None),
        )
    elif failed is not None and failed.error is not None:
        error = failed.error
    elif (limit := _oom_limit(pods)) is not None:
        error = JobError(
            code=ErrorCode.EXTRACTION_FAILED,
            message="the worker ran out of memory",
            details=f"OOMKilled: over its memory limit of {limit}; Job failed: {reason}",
        )
    else:
        error = JobError(
            code=ErrorCode.INTERNAL_ERROR,
            message="the worker's pod ended without a result",
            details=f"Job failed: {reason}",
        )
    update.update(status=JobState.failed, error=error)
    if failed is not None and failed.inputFile is not None:
        update["inputFile"] = failed.inputFile
    if failed is not None and failed.timings is not None:
        update["timings"] = failed.timings
    return entry.model_copy(update=update)


JOB_DELETED_RUNNING = "its Kubernetes Job was deleted before the job finished"
JOB_DELETED_FINISHED = "its Kubernetes Job was deleted before its outcome was recorded"


def gone_entry(
    entry: JobStatus, job: Mapping[str, Any] | None, pods: Iterable[Mapping[str, Any]], now: str
) -> JobStatus | None:
    """The entry of a job whose Job no longer exists (deleted by hand, or by its TTL before the
    outcome was mapped); ``job`` is its last known state, if any. None: it never started, so
    creating its Job again loses nothing. Otherwise the entry ends: with the outcome when the Job
    finished and that outcome can still be read (its pods, or a deadline), else ``failed``
    ``INTERNAL_ERROR``: running the extraction a second time is not ours to decide (whoever
    deleted a running Job meant to stop it), and an entry left ``processing`` would hold its batch
    open, and the queue, for ever."""
    if entry.status in TERMINAL_STATES:
        return entry
    pods = list(pods)
    finished = job_finished(job) if job is not None else None
    if finished is not None:
        reason = (_condition(job, "Failed") or {}).get("reason")  # type: ignore[arg-type]
        if pods or reason == "DeadlineExceeded":
            return job_entry(entry, job, pods, now)
    started = entry.status != JobState.queued or (
        job is not None and (not job_suspended(job) or bool((job.get("status") or {}).get("startTime")))
    )
    if not started:
        return None
    name = (job or {}).get("metadata", {}).get("name") or entry.jobName
    return entry.model_copy(
        update={
            "status": JobState.failed,
            "completedAt": now,
            "currentStep": None,
            "estimatedTimeRemaining": None,
            "error": JobError(
                code=ErrorCode.INTERNAL_ERROR,
                message=JOB_DELETED_FINISHED if finished else JOB_DELETED_RUNNING,
                details=f"Job {name} had finished: {finished}" if finished else f"Job {name} was running",
            ),
        }
    )


def cancelled(entry: JobStatus, now: str) -> JobStatus:
    if entry.status in TERMINAL_STATES:
        return entry
    return entry.model_copy(
        update={
            "status": JobState.cancelled,
            "completedAt": now,
            "currentStep": None,
            "queueReason": None,
            "estimatedTimeRemaining": None,
            "error": JobError(code=ErrorCode.CANCELLED, message="the job was cancelled"),
        }
    )


def failed_permanently(entry: JobStatus, code: ErrorCode, message: str, now: str) -> JobStatus:
    if entry.status in TERMINAL_STATES:
        return entry
    return entry.model_copy(
        update={
            "status": JobState.failed,
            "completedAt": now,
            "currentStep": None,
            "error": JobError(code=code, message=message),
        }
    )


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: str,
    generation: int | None,
) -> list[Condition]:
    """Upsert a condition; ``lastTransitionTime`` moves only when its status flips."""
    value: Literal["True", "False"] = "True" if status else "False"
    out, found = [], False
    for c in conditions:
        if c.type != type_:
            out.append(c)
            continue
        found = True
        changed = c.status != value
        out.append(
            c.model_copy(
                update={
                    "status": value,
                    "reason": reason,
                    "message": message,
                    "observedGeneration": generation,
                    "lastTransitionTime": now if changed else c.lastTransitionTime,
                }
            )
        )
    if not found:
        out.append(
            Condition(
                type=type_,
                status=value,
                reason=reason,
                message=message,
                lastTransitionTime=now,
                observedGeneration=generation,
            )
        )
    return out


def summarize(status: BatchStatus, now: str, generation: int | None) -> BatchStatus:
    """Counts, phase and the Accepted/Running/Complete/Failed conditions from the job entries."""
    states = [j.status for j in status.jobs]
    count = {s: states.count(s) for s in JobState}
    total = len(states)
    done = total > 0 and all(s in TERMINAL_STATES for s in states)
    unsuccessful = count[JobState.failed] + count[JobState.cancelled]
    if done:
        phase = Phase.Succeeded if unsuccessful == 0 else Phase.Failed
    elif count[JobState.queued] == total:
        phase = Phase.Queued
    else:
        phase = Phase.Running

    conds = list(status.conditions)
    conds = set_condition(conds, "Accepted", True, "JobsCreated", f"{total} job(s) accepted", now, generation)
    conds = set_condition(
        conds,
        "Running",
        count[JobState.processing] > 0,
        "JobsRunning" if count[JobState.processing] else ("AllJobsFinished" if done else "Waiting"),
        f"{count[JobState.processing]} processing, {count[JobState.queued]} queued",
        now,
        generation,
    )
    conds = set_condition(
        conds,
        "Complete",
        done,
        "AllJobsFinished" if done else "JobsPending",
        f"{count[JobState.completed]}/{total} completed, {unsuccessful} failed or cancelled",
        now,
        generation,
    )
    conds = set_condition(
        conds,
        "Failed",
        done and unsuccessful > 0,
        "JobsFailed" if done and unsuccessful else "NoFailure",
        f"{unsuccessful} job(s) failed or were cancelled" if unsuccessful else "",
        now,
        generation,
    )
    # A permanent problem (e.g. a foreign Job holding a name) keeps its own condition, set elsewhere.
    return status.model_copy(
        update={
            "total": total,
            "queued": count[JobState.queued],
            "processing": count[JobState.processing],
            "completed": count[JobState.completed],
            "failed": unsuccessful,
            "phase": phase,
            "conditions": conds,
            "observedGeneration": generation,
            "completedAt": (status.completedAt or now) if done else None,
        }
    )
