"""Event payloads, targets, ids and planning (docs/contract.md §5)."""

from __future__ import annotations

import json

from audio_extract_common.batch_spec import BatchSpec
from audio_extract_common.batch_status import BatchStatus, JobStatus
from audio_extract_operator.webhooks import events

KEY = "0123456789abcd"
UID = "4f1c2b7e-0000-4000-8000-000000000001"
BATCH_ID = f"batch_{KEY}00"


def job_id(i: int) -> str:
    return f"job_{KEY}{i + 1:02x}"


def spec(batch_webhook: str | None = "https://hooks.example.com/batch", job_hooks=(None, None)) -> BatchSpec:
    jobs = []
    for hook in job_hooks:
        job = {
            "source": {"type": "url", "url": "https://media.example.com/a.mp4"},
            "output": {"format": "mp3"},
        }
        if hook:
            job["options"] = {"webhook": hook}
        jobs.append(job)
    body = {"jobs": jobs}
    if batch_webhook:
        body["webhook"] = batch_webhook
    return BatchSpec.model_validate(body)


def completed(i: int) -> JobStatus:
    return JobStatus.model_validate(
        {
            "index": i,
            "jobId": job_id(i),
            "jobName": job_id(i).replace("_", "-"),
            "status": "completed",
            "progress": 100,
            "completedAt": "2026-01-21T12:34:56Z",
            "outputFile": {
                "filename": "talk.mp3",
                "path": f"{job_id(i)}/talk.mp3",
                "size": 123456,
                "duration": 61.5,
                "format": "mp3",
                "bitrate": "192k",
                "sampleRate": 44100,
                "channels": 2,
                "transcoded": True,
            },
        }
    )


def failed(i: int, code: str = "NO_AUDIO_STREAM", state: str = "failed") -> JobStatus:
    return JobStatus.model_validate(
        {
            "index": i,
            "jobId": job_id(i),
            "jobName": "x",
            "status": state,
            "completedAt": "2026-01-21T12:35:00Z",
            "error": {
                "code": code,
                "message": "the source has no audio stream",
                "details": "ffprobe: 0 streams",
            },
        }
    )


def queued(i: int) -> JobStatus:
    return JobStatus(index=i, jobId=job_id(i), jobName="x")


def test_job_completed_payload_is_exactly_the_contract_shape():
    body = events.job_payload(completed(0), BATCH_ID, "2026-01-21T12:34:56Z", "/audio-extract/v1")
    assert body == {
        "event": "job.completed",
        "jobId": job_id(0),
        "batchId": BATCH_ID,
        "status": "completed",
        "timestamp": "2026-01-21T12:34:56Z",
        "downloadUrl": f"/audio-extract/v1/download/{job_id(0)}",
        "outputFile": {
            "filename": "talk.mp3",
            "url": f"/audio-extract/v1/download/{job_id(0)}",
            "size": 123456,
            "duration": 61.5,
            "format": "mp3",
            "bitrate": "192k",
            "sampleRate": 44100,
            "channels": 2,
        },
    }
    assert "path" not in body["outputFile"]  # store paths are internal


def test_job_failed_payload_carries_the_error_and_no_download():
    body = events.job_payload(failed(1), BATCH_ID, "2026-01-21T12:35:00Z", "/audio-extract/v1")
    assert body == {
        "event": "job.failed",
        "jobId": job_id(1),
        "batchId": BATCH_ID,
        "status": "failed",
        "timestamp": "2026-01-21T12:35:00Z",
        "error": {
            "code": "NO_AUDIO_STREAM",
            "message": "the source has no audio stream",
            "details": "ffprobe: 0 streams",
        },
    }


def test_cancelled_job_sends_job_failed_with_cancelled_code():
    body = events.job_payload(failed(0, "CANCELLED", "cancelled"), BATCH_ID, "t", "/p")
    assert body["event"] == "job.failed"
    assert body["error"]["code"] == "CANCELLED"
    assert body["status"] == "cancelled"


def test_public_prefix_is_configurable():
    body = events.job_payload(completed(0), BATCH_ID, "t", "https://audio.example.com/v1/")
    assert body["downloadUrl"] == f"https://audio.example.com/v1/download/{job_id(0)}"


def test_batch_completed_payload_counts_and_nothing_per_job():
    jobs = [completed(0), failed(1), failed(2, "CANCELLED", "cancelled")]
    status = BatchStatus(batchId=BATCH_ID, jobs=jobs)
    body = events.batch_payload(status, BATCH_ID, "2026-01-21T12:36:00Z")
    assert body == {
        "event": "batch.completed",
        "batchId": BATCH_ID,
        "status": "failed",
        "timestamp": "2026-01-21T12:36:00Z",
        "totalJobs": 3,
        "completed": 1,
        "failed": 1,
        "cancelled": 1,
    }
    ok = events.batch_payload(BatchStatus(batchId=BATCH_ID, jobs=[completed(0)]), BATCH_ID, "t")
    assert ok["status"] == "completed"


def test_job_webhook_overrides_batch_webhook():
    s = spec("https://b.example.com/", ("https://j0.example.com/", None))
    assert events.job_target(s, 0) == "https://j0.example.com/"
    assert events.job_target(s, 1) == "https://b.example.com/"
    assert events.job_target(spec(None, (None, "https://j1.example.com/")), 0) is None


def test_webhook_id_is_stable_distinct_and_dot_free():
    a = events.webhook_id(UID, job_id(0), "job.completed")
    assert a == events.webhook_id(UID, job_id(0), "job.completed")
    assert a.startswith("msg_") and "." not in a and len(a) == 28
    others = {
        events.webhook_id(UID, job_id(1), "job.completed"),
        events.webhook_id(UID, job_id(0), "job.failed"),
        events.webhook_id("other-uid", job_id(0), "job.completed"),
    }
    assert a not in others and len(others) == 3


def test_plan_creates_one_delivery_per_terminal_job_then_nothing():
    s = spec("https://b.example.com/", ("https://j0.example.com/", None))
    status = BatchStatus(batchId=BATCH_ID, jobs=[completed(0), queued(1)])
    planned = list(events.plan(s, status, UID, "2026-01-21T12:40:00Z"))
    assert [(p.index, p.delivery.event, p.delivery.url) for p in planned] == [
        (0, "job.completed", "https://j0.example.com/")
    ]
    d = planned[0].delivery
    assert (d.state, d.attempts, d.nextAttemptAt, d.timestamp) == (
        "pending",
        0,
        "2026-01-21T12:40:00Z",
        "2026-01-21T12:34:56Z",
    )
    # Re-planning after a restart that lost the record gives the very same delivery.
    assert list(events.plan(s, status, UID, "2026-01-21T12:40:00Z")) == planned
    status.jobs[0].webhook = d
    assert list(events.plan(s, status, UID, "2026-01-21T12:40:05Z")) == []


def test_batch_completed_only_when_all_terminal_and_only_to_batch_url():
    s = spec("https://b.example.com/", (None, "https://j1.example.com/"))
    status = BatchStatus(batchId=BATCH_ID, jobs=[completed(0), failed(1)], completedAt="2026-01-21T12:36:00Z")
    planned = list(events.plan(s, status, UID, "now"))
    assert [(p.index, p.delivery.event, p.delivery.url) for p in planned] == [
        (0, "job.completed", "https://b.example.com/"),
        (1, "job.failed", "https://j1.example.com/"),
        (None, "batch.completed", "https://b.example.com/"),
    ]
    assert planned[2].delivery.timestamp == "2026-01-21T12:36:00Z"
    # Without a batch-level webhook there is no batch.completed, even if every job has its own.
    s2 = spec(None, ("https://j0.example.com/", "https://j1.example.com/"))
    assert [p.index for p in events.plan(s2, status, UID, "now")] == [0, 1]
    # Not finished: no batch event.
    status.jobs[1] = queued(1)
    assert [p.index for p in events.plan(s, status, UID, "now")] == [0]


def test_body_is_rebuilt_identically_and_is_compact_json():
    s = spec()
    status = BatchStatus(batchId=BATCH_ID, jobs=[completed(0), failed(1)])
    (p0, _p1, pb) = events.plan(s, status, UID, "now")
    b1 = events.body_for(status, 0, p0.delivery, "/audio-extract/v1")
    assert b1 == events.body_for(status, 0, p0.delivery, "/audio-extract/v1")
    assert json.loads(b1)["jobId"] == job_id(0)
    assert b" " not in b1.replace(b"the source has no audio stream", b"")
    assert json.loads(events.body_for(status, None, pb.delivery, "/x"))["event"] == "batch.completed"
