"""ExtractionBatch objects → the contract's job and batch views (pure functions).

The operator writes ``status``; until it has, a job is shown as ``queued`` from the ``spec``.
Ids come from ``status.jobs[i].jobId`` when present (kubectl-applied batches get theirs from the
object's uid) and otherwise from the object's name through ``ids``.

``status`` is read once per view with the operator's own models (``batch_status``): fields a
newer operator added are ignored, and the views are built from the parsed models, not the raw
object.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from audio_extract_common import ids, timefmt
from audio_extract_common.batch_status import BatchStatus, Delivery, JobState, JobStatus, Phase

KEY_ID_ANNOTATION = "audioextract.io/api-key-id"
REQUEST_HASH_ANNOTATION = "audioextract.io/request-sha256"


def tenant_of(obj: dict[str, Any]) -> str | None:
    """The tenant the batch belongs to; None (admin keys only) when it carries no tenant label."""
    return (obj["metadata"].get("labels") or {}).get(ids.TENANT_LABEL) or None


def batch_status(obj: dict[str, Any]) -> BatchStatus:
    """The object's ``status`` as the operator's models read it (empty before it wrote one)."""
    return BatchStatus.model_validate(obj.get("status") or {})


def batch_id_of(obj: dict[str, Any], status: BatchStatus | None = None) -> str:
    status = batch_status(obj) if status is None else status
    return status.batchId or ids.batch_id(ids.recorded_batch_key(obj))


def job_status(obj: dict[str, Any], index: int, status: BatchStatus | None = None) -> JobStatus | None:
    """The status entry of the job at ``index``; None until the operator wrote it."""
    status = batch_status(obj) if status is None else status
    return next((entry for entry in status.jobs if entry.index == index), None)


def job_id_of(obj: dict[str, Any], index: int, status: BatchStatus | None = None) -> str:
    st = job_status(obj, index, status)
    return (st.jobId if st is not None else None) or ids.job_id(ids.recorded_batch_key(obj), index)


def job_count(obj: dict[str, Any]) -> int:
    return len((obj.get("spec") or {}).get("jobs") or [])


def is_expired(st: JobStatus, now: datetime | None = None) -> bool:
    if st.expired:
        return True
    if not st.expiresAt:
        return False
    try:
        return (now or timefmt.now()) >= timefmt.parse(st.expiresAt)
    except ValueError:
        return False


def _delivery(delivery: Delivery | None) -> dict[str, Any] | None:
    # Only the fields the status holds, as the operator wrote them: the views have always shown
    # the record itself, without the defaults of the fields it leaves out.
    return None if delivery is None else delivery.model_dump(mode="json", exclude_unset=True)


def download_url(prefix: str, job_id: str) -> str:
    return f"{prefix}/download/{job_id}"


def status_url(prefix: str, job_id: str) -> str:
    return f"{prefix}/status/{job_id}"


def job_view(
    obj: dict[str, Any],
    index: int,
    prefix: str,
    now: datetime | None = None,
    links: Mapping[int, str] | None = None,
) -> dict[str, Any]:
    """The contract's job view; ``links`` holds the outputs' own URLs (an object store's presigned
    GETs, by job index) where ``outputFile.url`` is not the download path."""
    return _job_view(obj, batch_status(obj), index, prefix, now, links)


def _job_view(
    obj: dict[str, Any],
    status: BatchStatus,
    index: int,
    prefix: str,
    now: datetime | None,
    links: Mapping[int, str] | None,
) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    spec_job = spec["jobs"][index]
    st = job_status(obj, index, status) or JobStatus(index=index, jobId="", jobName="")
    job_id = st.jobId or ids.job_id(ids.recorded_batch_key(obj), index)
    state = st.status
    opts = spec_job.get("options") or {}
    asked = spec_job.get("output") or {}
    completed = state == JobState.completed
    out = st.outputFile if completed else None
    url = download_url(prefix, job_id) if completed else None
    error: dict[str, Any] | None = None
    if state in (JobState.failed, JobState.cancelled) and st.error is not None:
        error = {"code": st.error.code.value, "message": st.error.message, "details": st.error.details}
    elif state == JobState.cancelled:
        error = {"code": "CANCELLED", "message": "The job was cancelled", "details": None}
    inp = st.inputFile
    return {
        "jobId": job_id,
        "batchId": batch_id_of(obj, status),
        "status": state.value,
        "progress": st.progress or (100 if completed else 0),
        "currentStep": None if st.currentStep is None else st.currentStep.value,
        "estimatedTimeRemaining": st.estimatedTimeRemaining,
        "inputFile": None
        if inp is None
        else {"name": inp.name, "size": inp.size, "duration": inp.duration, "format": inp.format},
        "outputFile": None
        if out is None
        else {
            "filename": out.filename,
            "url": (links or {}).get(index, url),
            "size": out.size,
            "duration": out.duration,
            "format": out.format,
            "bitrate": out.bitrate,
            "sampleRate": out.sampleRate,
            "channels": out.channels,
        },
        "downloadUrl": url,
        "error": error,
        "options": {
            "filename": opts.get("filename"),
            "webhook": opts.get("webhook") or spec.get("webhook"),
            "priority": opts.get("priority") or "normal",
            # docs/contract.md §7: the output options echo what was asked (null: the default applies).
            "sampleRate": asked.get("sampleRate"),
            "channels": asked.get("channels"),
            "trim": asked.get("trim"),
            "audioTrack": (spec_job.get("source") or {}).get("audioTrack"),
        },
        "createdAt": st.createdAt or obj["metadata"].get("creationTimestamp"),
        "startedAt": st.startedAt,
        "completedAt": st.completedAt,
        "expiresAt": st.expiresAt,
        "expired": is_expired(st, now) if completed else False,
        "webhook": _delivery(st.webhook),
    }


def batch_view(
    obj: dict[str, Any], prefix: str, now: datetime | None = None, links: Mapping[int, str] | None = None
) -> dict[str, Any]:
    status = batch_status(obj)
    jobs = [_job_view(obj, status, i, prefix, now, links) for i in range(job_count(obj))]
    counts = {s.value: 0 for s in JobState}
    for j in jobs:
        counts[j["status"]] += 1
    return {
        "batchId": batch_id_of(obj, status),
        "name": obj["metadata"]["name"],
        "phase": (status.phase or Phase.Queued).value,
        "totalJobs": len(jobs),
        **counts,
        "cancelRequested": bool((obj.get("spec") or {}).get("cancel")),
        "webhook": (obj.get("spec") or {}).get("webhook"),
        "webhookDelivery": _delivery(status.webhook),
        "createdAt": obj["metadata"].get("creationTimestamp"),
        "completedAt": status.completedAt,
        "jobs": jobs,
    }


def accepted_view(obj: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The 202 body of POST /v1/batch."""
    status = batch_status(obj)
    jobs = []
    for i in range(job_count(obj)):
        jid = job_id_of(obj, i, status)
        st = job_status(obj, i, status)
        jobs.append(
            {
                "jobId": jid,
                "status": (JobState.queued if st is None else st.status).value,
                "statusUrl": status_url(prefix, jid),
            }
        )
    return {"batchId": batch_id_of(obj, status), "totalJobs": len(jobs), "jobs": jobs}
