"""The largest ExtractionBatch the API and the CRD accept, with the largest status the operator can
give it, as one Kubernetes watch event line: what every watch client must read in one piece.

Every bound comes from the project's own models and limits (MAX_JOBS, the URL length, the
filename's ``max_length``, the termination message's 4 KiB, the webhook error cut), so a limit that
grows grows this batch too. Strings are made of the characters that grow most on the wire where
the models accept them: the API server's JSON encoder (Go's ``encoding/json``) writes ``&``, ``<``
and ``>`` as six-byte ``\\u0026`` escapes, and kopf keeps a second copy of the spec in an annotation
(its diff base), where the escapes are escaped again.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from audio_extract_common import ids
from audio_extract_common.batch_resource import API_VERSION, KIND
from audio_extract_common.batch_spec import BatchSpec, Options
from audio_extract_common.batch_status import BatchStatus, Delivery, ErrorCode, InputFile, JobError
from audio_extract_common.ids import MAX_JOBS
from audio_extract_common.results import WorkerResult
from audio_extract_common.spec_rules import MAX_URL_LENGTH
from audio_extract_operator.webhooks.policy import MAX_ERROR_CHARS

WIDE = "&"
"""Six bytes on the wire for one character of the model."""
DIFFBASE_ANNOTATION = "audioextract.io/last-handled-configuration"
TIME = "2026-01-21T12:00:00Z"


def longest_url(prefix: str) -> str:
    """``prefix`` (scheme, host, path) padded with a query to the longest URL accepted."""
    return prefix + "?" + WIDE * (MAX_URL_LENGTH - len(prefix) - 1)


def longest_filename() -> str:
    """The name that grows most on the wire among those the model takes: of the widest character
    it accepts, as long as it accepts (found by asking the model, whatever its rule)."""

    def accepted(name: str) -> bool:
        try:
            Options(filename=name)
        except ValidationError:
            return False
        return True

    best = ""
    for char in (WIDE, "a"):
        low, high = 0, 1 << 16  # accepted(char * low); not accepted(char * high)
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (mid, high) if accepted(char * mid) else (low, mid)
        if len(go_json(char * low)) > len(go_json(best)):
            best = char * low
    assert best, "no filename is accepted"
    return best


def largest_spec(
    source_prefix: str = "https://media.example.com/v.mp4",
    webhook_prefix: str = "https://hooks.example.com/h",
) -> dict[str, Any]:
    job = {
        "source": {"type": "url", "url": longest_url(source_prefix)},
        "output": {"format": "mp3", "bitrate": "320k", "normalize": True, "preserveMetadata": True},
        "options": {
            "filename": longest_filename(),
            "priority": "normal",
            "webhook": longest_url(webhook_prefix),
        },
    }
    spec = {
        "jobs": [job] * MAX_JOBS,
        "webhook": longest_url(webhook_prefix),
        "cancelJobs": list(range(MAX_JOBS)),
    }
    return BatchSpec.model_validate(spec).model_dump(mode="json", exclude_none=True)


def _largest_failure() -> tuple[JobError, InputFile]:
    """The largest error and input facts a worker's termination message can carry (4 KiB)."""
    result = WorkerResult(
        error=JobError(code=ErrorCode.EXTRACTION_FAILED, message=WIDE * 1000, details=WIDE * 8192),
        inputFile=InputFile(name=WIDE * 255, size=5 * 10**9, duration=1e6, format="mov"),
    )
    read = WorkerResult.model_validate_json(result.to_message())
    assert read.error is not None and read.inputFile is not None
    return read.error, read.inputFile


def largest_status(spec: dict[str, Any], name: str, uid: str) -> dict[str, Any]:
    error, input_file = _largest_failure()
    jobs = []
    for i, job in enumerate(spec["jobs"]):
        job_id = ids.job_id(ids.batch_key(name, uid), i)
        delivery = Delivery(
            event="job.failed",
            url=job["options"]["webhook"],
            id=f"msg_{job_id}" + "0" * 16,
            timestamp=TIME,
            state="failed",
            attempts=99,
            lastStatusCode=599,
            lastError=WIDE * MAX_ERROR_CHARS,
        )
        jobs.append(
            {
                "index": i,
                "jobId": job_id,
                "jobName": ids.job_object_name(job_id),
                "status": "failed",
                "currentStep": "finalizing",
                "progress": 100,
                "estimatedTimeRemaining": 10**9,
                "createdAt": TIME,
                "startedAt": TIME,
                "completedAt": TIME,
                "expiresAt": TIME,
                "expired": True,
                "inputFile": input_file.model_dump(),
                "error": error.model_dump(),
                "webhook": delivery.model_dump(),
            }
        )
    batch_delivery = Delivery(
        event="batch.completed",
        url=spec["webhook"],
        id="msg_" + "0" * 32,
        timestamp=TIME,
        state="failed",
        attempts=99,
        lastStatusCode=599,
        lastError=WIDE * MAX_ERROR_CHARS,
    )
    conditions = [
        {
            "type": t,
            "status": "True",
            "reason": "JobsFailed",
            "message": WIDE * 256,
            "lastTransitionTime": TIME,
            "observedGeneration": 10**9,
        }
        for t in ("Accepted", "Running", "Complete", "Failed")
    ]
    status = {
        "batchId": ids.batch_id(ids.batch_key(name, uid)),
        "phase": "Failed",
        "observedGeneration": 10**9,
        "total": MAX_JOBS,
        "queued": 0,
        "processing": 0,
        "completed": 0,
        "failed": MAX_JOBS,
        "jobs": jobs,
        "conditions": conditions,
        "webhook": batch_delivery.model_dump(),
        "completedAt": TIME,
    }
    return BatchStatus.model_validate(status).model_dump(mode="json", exclude_none=True)


def largest_batch(
    name: str = "b" * 63, namespace: str = "n" * 63, uid: str = "00000000-0000-0000-0000-000000000000"
) -> dict[str, Any]:
    """The whole object as a watch sends it (without managedFields: the server adds those)."""
    spec = largest_spec()
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "generation": 10**9,
            "resourceVersion": "9" * 19,
            "creationTimestamp": TIME,
            "labels": {ids.TENANT_LABEL: "t" * 63, ids.KEY_LABEL: ids.batch_key(name, uid)},
            "annotations": {DIFFBASE_ANNOTATION: go_json({"spec": spec})},
            "finalizers": ["audioextract.io/operator"],
        },
        "spec": spec,
        "status": largest_status(spec, name, uid),
    }


def go_json(obj: Any) -> str:
    """JSON as the API server writes it: compact, with ``&``, ``<``, ``>`` as ``\\u00XX`` escapes."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def watch_line(obj: dict[str, Any], type_: str = "MODIFIED") -> bytes:
    return (go_json({"type": type_, "object": obj}) + "\n").encode()
