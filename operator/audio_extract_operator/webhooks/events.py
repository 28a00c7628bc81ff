"""Webhook events: which ones a batch owes, to where, under which id, with which body (docs/contract.md §5).

Pure functions of the resource. A delivery is recorded in status (``JobStatus.webhook`` /
``BatchStatus.webhook``) the first time it is planned; its ``webhook-id`` is derived from the
batch's uid, the job id and the event, so a restart that plans it again gets the same id and a
receiver can deduplicate. The body is rebuilt from the (terminal, hence frozen) status at each
attempt, so it is the same bytes every time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from audio_extract_common.batch_spec import BatchSpec
from audio_extract_common.batch_status import TERMINAL_STATES, BatchStatus, Delivery, JobState, JobStatus

JOB_COMPLETED = "job.completed"
JOB_FAILED = "job.failed"
BATCH_COMPLETED = "batch.completed"


def webhook_id(batch_uid: str, subject: str, event: str) -> str:
    """Stable ``webhook-id``: ``msg_`` + 24 hex of sha256(uid/subject/event). Never contains ``.``."""
    digest = hashlib.sha256(f"{batch_uid}/{subject}/{event}".encode()).hexdigest()
    return f"msg_{digest[:24]}"


def job_target(spec: BatchSpec, index: int) -> str | None:
    """The job's own ``options.webhook`` overrides the batch's ``webhook``."""
    own = spec.jobs[index].options.webhook
    return own or spec.webhook


def job_event(job: JobStatus) -> str:
    return JOB_COMPLETED if job.status == JobState.completed else JOB_FAILED


def new_delivery(event: str, url: str, id_: str, event_time: str, now: str) -> Delivery:
    """A pending delivery whose first attempt is due right away."""
    return Delivery(event=event, url=url, id=id_, timestamp=event_time, nextAttemptAt=now)


def download_url(prefix: str, job_id: str) -> str:
    return f"{prefix.rstrip('/')}/download/{job_id}"


def job_payload(job: JobStatus, batch_id: str, event_time: str, prefix: str) -> dict[str, Any]:
    """``job.completed`` / ``job.failed`` exactly as docs/contract.md §5 spells them.

    A cancelled job sends ``job.failed`` with ``error.code`` CANCELLED; its ``status`` is
    ``cancelled``, as GET /v1/status reports it.
    """
    body: dict[str, Any] = {
        "event": job_event(job),
        "jobId": job.jobId,
        "batchId": batch_id,
        "status": str(job.status),
        "timestamp": event_time,
    }
    if job.status == JobState.completed:
        url = download_url(prefix, job.jobId)
        out = job.outputFile
        body["downloadUrl"] = url
        body["outputFile"] = (
            None
            if out is None
            else {
                "filename": out.filename,
                "url": url,
                "size": out.size,
                "duration": out.duration,
                "format": out.format,
                "bitrate": out.bitrate,
                "sampleRate": out.sampleRate,  # docs/contract.md §7
                "channels": out.channels,
            }
        )
    else:
        err = job.error
        body["error"] = (
            {"code": str(err.code), "message": err.message, "details": err.details}
            if err is not None
            else {
                "code": "INTERNAL_ERROR",
                "message": "the job failed without a recorded error",
                "details": None,
            }
        )
    return body


def batch_payload(status: BatchStatus, batch_id: str, event_time: str) -> dict[str, Any]:
    """``batch.completed`` (extension): counts only; each job's details came in its own event."""
    cancelled = sum(1 for j in status.jobs if j.status == JobState.cancelled)
    completed = sum(1 for j in status.jobs if j.status == JobState.completed)
    total = len(status.jobs)
    return {
        "event": BATCH_COMPLETED,
        "batchId": batch_id,
        "status": "completed" if completed == total else "failed",
        "timestamp": event_time,
        "totalJobs": total,
        "completed": completed,
        "failed": total - completed - cancelled,
        "cancelled": cancelled,
    }


def encode(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed: compact, ASCII-only, stable key order."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode()


def batch_finished(status: BatchStatus) -> bool:
    return bool(status.jobs) and all(j.status in TERMINAL_STATES for j in status.jobs)


@dataclass(frozen=True)
class Planned:
    """A delivery to record in status: ``index`` is the job's index, or None for batch.completed."""

    index: int | None
    delivery: Delivery


def plan(spec: BatchSpec, status: BatchStatus, batch_uid: str, now: str) -> Iterator[Planned]:
    """Deliveries the batch owes but has not recorded yet. Idempotent: recorded ones are skipped."""
    for job in status.jobs:
        if job.webhook is not None or job.status not in TERMINAL_STATES:
            continue
        if job.index >= len(spec.jobs):
            continue
        url = job_target(spec, job.index)
        if url is None:
            continue
        event = job_event(job)
        yield Planned(
            job.index,
            new_delivery(event, url, webhook_id(batch_uid, job.jobId, event), job.completedAt or now, now),
        )
    if status.webhook is None and spec.webhook and batch_finished(status):
        yield Planned(
            None,
            new_delivery(
                BATCH_COMPLETED,
                spec.webhook,
                webhook_id(batch_uid, status.batchId or "", BATCH_COMPLETED),
                status.completedAt or now,
                now,
            ),
        )


def body_for(status: BatchStatus, index: int | None, delivery: Delivery, prefix: str) -> bytes:
    """The body of a recorded delivery, rebuilt from status (same bytes on every attempt)."""
    batch_id = status.batchId or ""
    if index is None:
        return encode(batch_payload(status, batch_id, delivery.timestamp))
    job = next(j for j in status.jobs if j.index == index)
    return encode(job_payload(job, batch_id, delivery.timestamp, prefix))
