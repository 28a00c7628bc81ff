"""ExtractionBatch objects → the contract's job and batch views (pure functions).

The operator writes ``status``; until it has, a job is shown as ``queued`` from the ``spec``.
Ids come from ``status.jobs[i].jobId`` when present (kubectl-applied batches get theirs from the
object's uid) and otherwise from the object's name through ``ids``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from audio_extract_common import ids, timefmt
from audio_extract_common.batch_status import JobState

KEY_ID_ANNOTATION = "audioextract.io/api-key-id"
REQUEST_HASH_ANNOTATION = "audioextract.io/request-sha256"


def tenant_of(obj: dict[str, Any]) -> str | None:
    """The tenant the batch belongs to; None (admin keys only) when it carries no tenant label."""
    return (obj["metadata"].get("labels") or {}).get(ids.TENANT_LABEL) or None


def batch_id_of(obj: dict[str, Any]) -> str:
    return (obj.get("status") or {}).get("batchId") or ids.batch_id(ids.recorded_batch_key(obj))


def job_status(obj: dict[str, Any], index: int) -> dict[str, Any]:
    for entry in (obj.get("status") or {}).get("jobs") or []:
        if entry.get("index") == index:
            return entry
    return {}


def job_id_of(obj: dict[str, Any], index: int) -> str:
    return job_status(obj, index).get("jobId") or ids.job_id(ids.recorded_batch_key(obj), index)


def job_count(obj: dict[str, Any]) -> int:
    return len((obj.get("spec") or {}).get("jobs") or [])


def is_expired(st: dict[str, Any], now: datetime | None = None) -> bool:
    if st.get("expired"):
        return True
    expires = st.get("expiresAt")
    if not expires:
        return False
    try:
        return (now or timefmt.now()) >= timefmt.parse(expires)
    except ValueError:
        return False


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
    spec = obj.get("spec") or {}
    spec_job = spec["jobs"][index]
    st = job_status(obj, index)
    job_id = st.get("jobId") or ids.job_id(ids.recorded_batch_key(obj), index)
    state = st.get("status") or JobState.queued.value
    opts = spec_job.get("options") or {}
    asked = spec_job.get("output") or {}
    completed = state == JobState.completed.value
    out = st.get("outputFile") if completed else None
    url = download_url(prefix, job_id) if completed else None
    error = st.get("error") if state in (JobState.failed.value, JobState.cancelled.value) else None
    if state == JobState.cancelled.value and not error:
        error = {"code": "CANCELLED", "message": "The job was cancelled", "details": None}
    return {
        "jobId": job_id,
        "batchId": batch_id_of(obj),
        "status": state,
        "progress": int(st.get("progress") or (100 if completed else 0)),
        "currentStep": st.get("currentStep"),
        "estimatedTimeRemaining": st.get("estimatedTimeRemaining"),
        "inputFile": _pick(st.get("inputFile"), ("name", "size", "duration", "format")),
        "outputFile": None
        if out is None
        else {
            "filename": out.get("filename"),
            "url": (links or {}).get(index, url),
            "size": out.get("size"),
            "duration": out.get("duration"),
            "format": out.get("format"),
            "bitrate": out.get("bitrate"),
            "sampleRate": out.get("sampleRate"),
            "channels": out.get("channels"),
        },
        "downloadUrl": url,
        "error": None
        if error is None
        else {
            "code": error.get("code"),
            "message": error.get("message"),
            "details": error.get("details"),
        },
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
        "createdAt": st.get("createdAt") or obj["metadata"].get("creationTimestamp"),
        "startedAt": st.get("startedAt"),
        "completedAt": st.get("completedAt"),
        "expiresAt": st.get("expiresAt"),
        "expired": is_expired(st, now) if completed else False,
        "webhook": st.get("webhook"),
    }


def _pick(d: dict[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any] | None:
    return None if d is None else {k: d.get(k) for k in keys}


def batch_view(
    obj: dict[str, Any], prefix: str, now: datetime | None = None, links: Mapping[int, str] | None = None
) -> dict[str, Any]:
    jobs = [job_view(obj, i, prefix, now, links) for i in range(job_count(obj))]
    status = obj.get("status") or {}
    counts = {s.value: 0 for s in JobState}
    for j in jobs:
        counts[j["status"]] += 1
    return {
        "batchId": batch_id_of(obj),
        "name": obj["metadata"]["name"],
        "phase": status.get("phase") or "Queued",
        "totalJobs": len(jobs),
        **counts,
        "cancelRequested": bool((obj.get("spec") or {}).get("cancel")),
        "webhook": (obj.get("spec") or {}).get("webhook"),
        "webhookDelivery": status.get("webhook"),
        "createdAt": obj["metadata"].get("creationTimestamp"),
        "completedAt": status.get("completedAt"),
        "jobs": jobs,
    }


def accepted_view(obj: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The 202 body of POST /v1/batch."""
    jobs = []
    for i in range(job_count(obj)):
        jid = job_id_of(obj, i)
        jobs.append(
            {
                "jobId": jid,
                "status": job_status(obj, i).get("status") or "queued",
                "statusUrl": status_url(prefix, jid),
            }
        )
    return {"batchId": batch_id_of(obj), "totalJobs": len(jobs), "jobs": jobs}
