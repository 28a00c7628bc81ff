"""Examples for the OpenAPI document: every request body, every JSON response, every webhook.

Requests are the contract's own example batches (the ones `crds/samples/` holds). Responses are
made by the code that makes real ones (``views`` on a sample ExtractionBatch, the envelopes, the
``API_ERRORS`` list), so they cannot drift from what the API answers; a test validates each one
against its schema and round-trips it through a generated client.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from audio_extract_common.batch_status import ErrorCode

from . import views
from .errors import API_ERRORS, ROUTING_ERRORS, ApiError

JOB_ID = "job_a1b2c3d4e5f6g7h8"  # the contract's own example id
JOB_ID_2 = "job_4e5f6a7b8c9d0e1f"
BATCH_ID = "batch_0a1b2c3d4e5f6a7b"
UPLOAD_ID = "upl_9c8b7a6f5e4d3c2b"
PREFIX = "/audio-extract/v1"
ACCEPTED_AT = "2026-01-21T12:34:56Z"
NOW = datetime(2026, 1, 21, 12, 40, tzinfo=UTC)
HOOK = "https://hooks.example.com/audio-extract"


def _url(name: str) -> dict[str, str]:
    return {"type": "url", "url": f"https://videos.example.com/{name}"}


# The contract's two example batches.
FIRST_BATCH = {
    "jobs": [
        {
            "source": _url("talk.mp4"),
            "output": {"format": "mp3", "quality": "high"},
            "options": {"filename": "talk-high", "priority": "high"},
        },
        {"source": _url("concert.mkv"), "output": {"format": "flac", "normalize": True}},
    ],
    "webhook": HOOK,
}
SECOND_BATCH = {
    "jobs": [
        {"source": _url("lecture.mp4"), "output": {"format": "mp3", "quality": "medium"}},
        {
            "source": _url("interview.mov"),
            "output": {"format": "aac", "bitrate": "256k", "preserveMetadata": True},
            "options": {"filename": "interview", "priority": "low"},
        },
    ]
}
UPLOADED_BATCH = {"jobs": [{"source": {"type": "upload", "file": UPLOAD_ID}, "output": {"format": "opus"}}]}
ONE_JOB = {
    "source": _url("podcast-episode-12.mp4"),
    "output": {"format": "mp3", "bitrate": "192k"},
    "options": {"filename": "episode-12", "webhook": HOOK},
}

REQUESTS: dict[str, dict[str, dict[str, Any]]] = {
    "post_batch": {
        "mp3-and-flac": {"summary": "The contract's first example batch", "value": FIRST_BATCH},
        "mp3-and-aac": {"summary": "The contract's second example batch", "value": SECOND_BATCH},
        "from-an-upload": {"summary": "(extension) An uploaded file as the source", "value": UPLOADED_BATCH},
    },
    "post_extract": {"one-job": {"summary": "One mp3 at 192k, with a webhook", "value": ONE_JOB}},
    "post_upload": {
        "direct": {
            "summary": "(extension) Where to PUT a file (an object store)",
            "value": {"filename": "talk.mp4", "size": 48213504, "contentType": "video/mp4"},
        }
    },
}

PARAMETERS = {
    "jobId": JOB_ID,
    "batchId": BATCH_ID,
    "Idempotency-Key": "4f8d2c1e-7b3a-4e9f-a6d5-0c1b2a3f4e5d",
    "redirect": True,
}

STORE = "https://s3.eu-west-1.amazonaws.com/audio-extract"
_SIGNATURE = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20260121%2Feu-west-1"
    "%2Fs3%2Faws4_request&X-Amz-Date=20260121T124000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders={signed}"
    "&X-Amz-Signature=5d3a8c0f1e2b4a6978c1d0e3f5a7b9c2d4e6f8a0b1c3d5e7f9a2b4c6d8e0f1a3"
)
DIRECT_UPLOAD = {
    "fileId": UPLOAD_ID,
    "uploadUrl": f"{STORE}/uploads/{UPLOAD_ID}?{_SIGNATURE.format(signed='content-type%3Bhost')}",
    "method": "PUT",
    "headers": {"Content-Type": "video/mp4", "Content-Length": "48213504"},
    "expiresAt": "2026-01-21T13:40:00Z",
}

# --- responses: views of a sample batch ------------------------------------------------------

_INPUT = {"name": "talk.mp4", "size": 48213504, "duration": 1843.2, "format": "mov,mp4,m4a,3gp,3g2,mj2"}
_STATES: dict[str, dict[str, Any]] = {
    "queued": {"status": "queued"},
    "processing": {
        "status": "processing",
        "currentStep": "extracting_audio",
        "progress": 45,
        "estimatedTimeRemaining": 12,
        "startedAt": "2026-01-21T12:35:02Z",
        "inputFile": _INPUT,
    },
    "completed": {
        "status": "completed",
        "currentStep": "finalizing",
        "progress": 100,
        "startedAt": "2026-01-21T12:35:02Z",
        "completedAt": "2026-01-21T12:36:10Z",
        "expiresAt": "2026-01-22T12:36:10Z",
        "inputFile": _INPUT,
        "outputFile": {
            "filename": "talk-high.mp3",
            "path": f"{JOB_ID}/talk-high.mp3",
            "size": 58982400,
            "duration": 1843.2,
            "format": "mp3",
            "bitrate": "256k",
        },
    },
    "failed": {
        "status": "failed",
        "currentStep": "analyzing_video",
        "startedAt": "2026-01-21T12:35:02Z",
        "completedAt": "2026-01-21T12:35:09Z",
        "inputFile": {**_INPUT, "name": "concert.mkv"},
        "error": {
            "code": "NO_AUDIO_STREAM",
            "message": "the source has no audio stream",
            "details": "streams found: video (h264)",
        },
    },
    "cancelled": {
        "status": "cancelled",
        "completedAt": "2026-01-21T12:35:30Z",
        "error": {"code": "CANCELLED", "message": "The job was cancelled", "details": None},
    },
}


def sample_batch(*states: str, request: dict[str, Any] = FIRST_BATCH) -> dict[str, Any]:
    """An ExtractionBatch as the operator leaves it, its jobs in these states."""
    spec = copy.deepcopy(request)
    spec["jobs"] = [spec["jobs"][i % len(spec["jobs"])] for i in range(len(states))]
    jobs = [
        {
            "index": i,
            "jobId": (JOB_ID, JOB_ID_2)[i],
            "jobName": f"batch-0a1b2c3d4e5f6a00-{i}",
            "createdAt": ACCEPTED_AT,
            **copy.deepcopy(_STATES[s]),
        }
        for i, s in enumerate(states)
    ]
    finished = all(j["status"] not in ("queued", "processing") for j in jobs)
    return {
        "metadata": {"name": "batch-0a1b2c3d4e5f6a00", "creationTimestamp": ACCEPTED_AT},
        "spec": spec,
        "status": {
            "batchId": BATCH_ID,
            "phase": "Running" if not finished else "Failed",
            "jobs": jobs,
            **({"completedAt": "2026-01-21T12:36:10Z"} if finished else {}),
        },
    }


def ok(data: Any, message: str | None = None) -> dict[str, Any]:
    return {"success": True, "data": data, **({"message": message} if message else {})}


def _job(state: str) -> dict[str, Any]:
    return views.job_view(sample_batch(state), 0, PREFIX, NOW)


def _named(summary: str, value: Any) -> dict[str, Any]:
    return {"summary": summary, "value": value}


def _responses() -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    accepted = views.accepted_view(sample_batch("queued", "queued"), PREFIX)
    batch = views.batch_view(sample_batch("completed", "processing"), PREFIX, NOW)
    done = views.batch_view(sample_batch("completed", "failed"), PREFIX, NOW)
    extract = {**accepted["jobs"][0], "batchId": BATCH_ID, "estimatedTime": 25}
    return {
        ("post_batch", "202"): {"accepted": _named("Queued", ok(accepted, "Batch jobs queued successfully"))},
        ("post_extract", "202"): {"accepted": _named("Queued", ok(extract, "Job queued successfully"))},
        ("get_status", "200"): {s: _named(s.capitalize(), ok(_job(s))) for s in _STATES},
        ("get_batch", "200"): {
            "running": _named("One job done, one running", ok(batch)),
            "finished": _named("Every job terminal", ok(done)),
        },
        ("cancel_job", "202"): {
            "requested": _named("Cancellation requested", ok(_job("processing"), "Cancellation requested"))
        },
        ("cancel_job", "200"): {
            "finished": _named(
                "Already finished", ok(_job("completed"), "Job already finished; nothing to cancel")
            )
        },
        ("cancel_batch", "202"): {
            "requested": _named("Cancellation requested", ok(batch, "Cancellation requested"))
        },
        ("post_upload", "201"): {
            "stored": _named("Stored", ok({"fileId": UPLOAD_ID, "size": 48213504}, "Upload stored")),
            "direct": _named(
                "(extension) Where to PUT the bytes (an object store)",
                ok(DIRECT_UPLOAD, "PUT the file's bytes to uploadUrl"),
            ),
        },
        ("healthz", "200"): {"ok": _named("Alive", ok({"status": "ok"}))},
        ("readyz", "200"): {"ready": _named("Ready", ok({"status": "ready"}))},
    }


RESPONSES = _responses()

# --- errors: one example per code, from the list the API raises from --------------------------

_DETAILS: dict[str, Any] = {
    "INVALID_REQUEST": [{"field": "jobs[0].extra", "message": "Extra inputs are not permitted"}],
    "INVALID_SOURCE": [{"field": "jobs[0].source.url", "message": "URL must not contain credentials"}],
    "INVALID_OUTPUT": [
        {
            "field": "jobs[3].output.bitrate",
            "message": "bitrate applies to lossy formats only (mp3, aac, ogg, opus)",
        }
    ],
    "TOO_MANY_JOBS": [{"field": "jobs", "message": "at most 10 jobs"}],
}


def error_body(cls: type[ApiError]) -> dict[str, Any]:
    return cls(details=_DETAILS.get(cls.code)).body()


def errors_for(status: int) -> dict[str, dict[str, Any]]:
    """One named example per code the API answers ``status`` with on an operation."""
    return {
        cls.code: _named(cls.default_message, error_body(cls))
        for cls in API_ERRORS
        if cls.status == status and cls not in ROUTING_ERRORS
    }


_JOB_ERRORS = {
    ErrorCode.NO_AUDIO_STREAM: ("the source has no audio stream", "streams found: video (h264)"),
    ErrorCode.DOWNLOAD_FAILED: ("the source answered 404", None),
    ErrorCode.CANCELLED: ("The job was cancelled", None),
}
JOB_FAILED = {
    code.value: _named(
        message,
        {
            "success": False,
            "error": {"code": code.value, "message": message, **({"details": details} if details else {})},
        },
    )
    for code, (message, details) in _JOB_ERRORS.items()
}

# --- webhooks: docs/contract.md §5's payloads -----------------------------------------------------------

_completed = _job("completed")
_failed = views.job_view(sample_batch("completed", "failed"), 1, PREFIX, NOW)
WEBHOOKS = {
    "job_completed": {
        "completed": _named(
            "job.completed",
            {
                "event": "job.completed",
                "jobId": JOB_ID,
                "batchId": BATCH_ID,
                "status": "completed",
                "timestamp": _completed["completedAt"],
                "downloadUrl": _completed["downloadUrl"],
                "outputFile": _completed["outputFile"],
            },
        )
    },
    "job_failed": {
        "failed": _named(
            "job.failed",
            {
                "event": "job.failed",
                "jobId": JOB_ID_2,
                "batchId": BATCH_ID,
                "status": "failed",
                "timestamp": _failed["completedAt"],
                "error": _failed["error"],
            },
        )
    },
    "batch_completed": {
        "completed": _named(
            "batch.completed",
            {
                "event": "batch.completed",
                "batchId": BATCH_ID,
                "status": "failed",
                "timestamp": "2026-01-21T12:36:10Z",
                "totalJobs": 2,
                "completed": 1,
                "failed": 1,
                "cancelled": 0,
            },
        )
    },
}
WEBHOOK_HEADERS = {
    "webhook-id": "msg_5a0c1e3b7d9f2a4c6e8b0d1f",
    "webhook-timestamp": "1768998970",
    "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
}
