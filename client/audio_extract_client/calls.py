"""Each route of the API as a request description and the model its answer is read into (pure).

The sync and the async client send the same ``Call`` objects; only the sending differs. Request
bodies are checked with the models the API validates with (``audio_extract_common.batch_spec``), so
a malformed job fails here with pydantic's message before anything is sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel

from audio_extract_common.api_models import (
    BatchAccepted,
    BatchRequest,
    BatchView,
    DirectUploadRequest,
    DirectUploadTicket,
    ExtractAccepted,
    JobView,
    UploadResult,
)
from audio_extract_common.batch_spec import ExtractionJob

from . import errors
from .retry import new_idempotency_key

M = TypeVar("M", bound=BaseModel)

JobLike = ExtractionJob | Mapping[str, Any]

_JOB_ID = re.compile(r"^job_[0-9a-z]{16}$")
_BATCH_ID = re.compile(r"^batch_[0-9a-z]{16}$")


@dataclass(frozen=True)
class Call(Generic[M]):
    """One request: sent as is on every attempt (the same ``Idempotency-Key`` included).

    ``resend_unanswered``: whether a request that got no answer at all may be sent again — true
    for reads, cancels and keyed submissions; false for uploads (a second upload is a second file).
    """

    method: str
    path: str
    model: type[M] | None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    resend_unanswered: bool = True

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("Idempotency-Key")


def _job_id(job_id: str) -> str:
    if not _JOB_ID.match(job_id):
        raise ValueError(f"not a job id (job_ + 16 characters): {job_id!r}")
    return job_id


def _batch_id(batch_id: str) -> str:
    if not _BATCH_ID.match(batch_id):
        raise ValueError(f"not a batch id (batch_ + 16 characters): {batch_id!r}")
    return batch_id


def job_body(job: JobLike) -> dict[str, Any]:
    """A job as the API takes it, checked by the API's own model."""
    model = job if isinstance(job, ExtractionJob) else ExtractionJob.model_validate(job)
    return model.model_dump(mode="json", exclude_none=True)


def batch_body(jobs: Iterable[JobLike], webhook: str | None = None) -> dict[str, Any]:
    """A batch body (1 to 10 jobs), checked by the API's own model."""
    body: dict[str, Any] = {"jobs": [job_body(j) for j in jobs]}
    if webhook is not None:
        body["webhook"] = webhook
    return BatchRequest.model_validate(body).model_dump(mode="json", exclude_none=True)


def submit_batch(
    jobs: Iterable[JobLike], webhook: str | None = None, idempotency_key: str | None = None
) -> Call[BatchAccepted]:
    """POST /v1/batch with a key made for this submission unless one is given."""
    key = idempotency_key or new_idempotency_key()
    return Call(
        "POST", "/v1/batch", BatchAccepted, json=batch_body(jobs, webhook), headers={"Idempotency-Key": key}
    )


def extract(job: JobLike, idempotency_key: str | None = None) -> Call[ExtractAccepted]:
    """POST /v1/extract: one job (a batch of one)."""
    key = idempotency_key or new_idempotency_key()
    return Call("POST", "/v1/extract", ExtractAccepted, json=job_body(job), headers={"Idempotency-Key": key})


def status(job_id: str) -> Call[JobView]:
    return Call("GET", f"/v1/status/{_job_id(job_id)}", JobView)


def batch(batch_id: str) -> Call[BatchView]:
    return Call("GET", f"/v1/batch/{_batch_id(batch_id)}", BatchView)


def cancel_job(job_id: str) -> Call[JobView]:
    return Call("POST", f"/v1/jobs/{_job_id(job_id)}/cancel", JobView)


def cancel_batch(batch_id: str) -> Call[BatchView]:
    return Call("POST", f"/v1/batch/{_batch_id(batch_id)}/cancel", BatchView)


def upload(size: int, content_type: str = "application/octet-stream") -> Call[UploadResult]:
    """POST /v1/uploads with a raw body of ``size`` bytes (the body is streamed by the client)."""
    headers = {"Content-Type": content_type, "Content-Length": str(size)}
    return Call("POST", "/v1/uploads", UploadResult, headers=headers, resend_unanswered=False)


def direct_upload(filename: str, size: int, content_type: str) -> Call[DirectUploadTicket]:
    """(docs/contract.md §7) POST /v1/uploads asking for a presigned URL to PUT the bytes to."""
    body = DirectUploadRequest(filename=filename, size=size, contentType=content_type)
    return Call("POST", "/v1/uploads", DirectUploadTicket, json=body.model_dump(), resend_unanswered=False)


class UploadRoute:
    """Which way an upload's bytes go, decided alike for both clients (docs/contract.md §7).

    ``direct`` per upload: ``True`` straight to the object store only (a refusal is raised),
    ``False`` streamed through the API only, ``None`` straight to the store where the service
    presigns, else streamed. A service on a volume answers the JSON form 400 ``INVALID_REQUEST``;
    the answer holds for the service, so one client asks it once.
    """

    def __init__(self) -> None:
        self.presigns = True  # until the service answers otherwise

    def asks_direct(self, direct: bool | None, size: int) -> bool:
        """Whether to ask for a presigned URL before sending the bytes."""
        if direct is not None:
            return direct
        # An empty file cannot be declared (the JSON form wants size >= 1): the streamed form gets
        # the API's own answer to it.
        return self.presigns and size > 0

    def streams_after(self, direct: bool | None, error: errors.ApiError) -> bool:
        """The JSON form was refused with ``error``: whether to send the bytes streamed instead
        (otherwise the error is the caller's)."""
        cannot_presign = isinstance(error, errors.InvalidRequest)
        if cannot_presign:
            self.presigns = False
        return cannot_presign and direct is None


def download(job_id: str, offset: int = 0) -> Call[Any]:
    """GET /v1/download/{jobId}, from byte ``offset`` on (a ``Range`` request) when it is not 0."""
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    return Call("GET", f"/v1/download/{_job_id(job_id)}", None, headers=headers)


def request(client: httpx.Client | httpx.AsyncClient, call: Call[Any], content: Any = None) -> httpx.Request:
    return client.build_request(
        call.method,
        call.path,
        json=call.json,
        headers=call.headers,
        params=call.params or None,
        content=content,
    )


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def check(response: httpx.Response) -> None:
    """Raise the typed error for an answer that is not a success (the body must have been read).

    A 202 is a success except in the envelope of ``JOB_NOT_COMPLETED`` (``success: false``)."""
    if response.is_success:
        body = _json(response) if "json" in response.headers.get("content-type", "") else None
        if not (isinstance(body, dict) and body.get("success") is False):
            return
    headers = {k.lower(): v for k, v in response.headers.items()}
    raise errors.from_response(response.status_code, _json(response), headers)


def check_store(response: httpx.Response) -> None:
    """A direct upload's PUT to the object store: anything but success is the store's refusal."""
    if not response.is_success:
        raise errors.ServerError(
            f"the store refused the upload: HTTP {response.status_code}",
            status=response.status_code,
            code="UPLOAD_FAILED",
        )


def parse(call: Call[M], response: httpx.Response) -> M:
    """The answer's ``data`` read into the call's model, or the typed error."""
    check(response)
    body = _json(response)
    if call.model is None or not isinstance(body, dict) or "data" not in body:
        raise errors.ServerError(
            f"unexpected answer to {call.method} {call.path}", status=response.status_code
        )
    return call.model.model_validate(body["data"])
