"""The API's request and response shapes (docs/contract.md §2, §3, §7).

One definition for both ends: the API's OpenAPI document is made from them (its handlers build
plain dicts in ``views``; the component tests validate real responses against that document), and
the Python client (``audio_extract_client``) parses responses with them. Pydantic only: a client
needs no web framework.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from .api_errors import ApiErrorCode
from .batch_spec import ExtractionJob
from .batch_status import ErrorCode, JobState, Step
from .ids import MAX_JOBS
from .spec_rules import HttpUrl, SpecModel

T = TypeVar("T")

# The job-level codes under the name clients see beside ApiErrorCode (its one list is ErrorCode).
JobErrorCode = StrEnum("JobErrorCode", {c.value: c.value for c in ErrorCode})  # type: ignore[misc]
JobErrorCode.__doc__ = "A job-level error code (docs/contract.md §4): why a job failed."

# The status enums, each shown inline in the OpenAPI document as a list of strings, as the views
# have always been described (no schema of their own for clients to generate a type from).
JobStateName = Annotated[JobState, WithJsonSchema({"enum": [s.value for s in JobState], "type": "string"})]
StepName = Annotated[Step, WithJsonSchema({"enum": [s.value for s in Step], "type": "string"})]


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    code: ApiErrorCode
    message: str
    details: str | list[FieldError] | None = None


class ErrorEnvelope(BaseModel):
    success: Literal[False]
    error: ErrorBody


class JobFailedBody(BaseModel):
    code: JobErrorCode
    message: str
    details: str | None = None


class JobFailedEnvelope(BaseModel):
    """The download of a job that failed or was cancelled: the job's own error."""

    success: Literal[False]
    error: JobFailedBody


class BatchRequest(SpecModel):
    """Body of POST /v1/batch."""

    jobs: list[ExtractionJob] = Field(min_length=1, max_length=MAX_JOBS, description="1 to 10 extractions.")
    webhook: HttpUrl | None = Field(
        default=None,
        description="Batch-level webhook: job events (unless a job names its own) and batch.completed.",
    )


class Envelope(BaseModel, Generic[T]):
    success: Literal[True]
    data: T
    message: str | None = None


class AcceptedJob(BaseModel):
    jobId: str
    status: JobStateName
    statusUrl: str


class BatchAccepted(BaseModel):
    batchId: str
    totalJobs: int
    jobs: list[AcceptedJob]


class ExtractAccepted(BaseModel):
    jobId: str
    batchId: str
    status: JobStateName
    estimatedTime: int = Field(description="Seconds until the output is expected (heuristic, see the docs).")
    statusUrl: str


class InputFileView(BaseModel):
    name: str | None
    size: int | None
    duration: float | None
    format: str | None


class OutputFileView(BaseModel):
    filename: str | None
    url: str | None = Field(
        description="The download path; (extension) with an object store, an absolute presigned URL of "
        "the file in the store, valid for a configured time (default 1 h) from the response."
    )
    size: int | None
    duration: float | None
    format: str | None
    bitrate: str | None
    sampleRate: int | None = Field(default=None, description="(extension) Hz.")
    channels: int | None = Field(default=None, description="(extension)")


class JobErrorView(BaseModel):
    code: JobErrorCode
    message: str | None
    details: str | None


class TrimView(BaseModel):
    start: float | None = None
    end: float | None = None


class TrackLanguageView(BaseModel):
    language: str


class OptionsView(BaseModel):
    """What was asked: ``filename`` as given (the output's own name is ``outputFile.filename``), and
    (extension) the output options, null where the default applies."""

    filename: str | None
    webhook: str | None
    priority: str
    sampleRate: int | None = None
    channels: int | None = None
    trim: TrimView | None = None
    audioTrack: int | TrackLanguageView | None = None


class JobView(BaseModel):
    jobId: str
    batchId: str
    status: JobStateName
    progress: int = Field(ge=0, le=100)
    currentStep: StepName | None
    estimatedTimeRemaining: int | None
    inputFile: InputFileView | None
    outputFile: OutputFileView | None
    downloadUrl: str | None
    error: JobErrorView | None
    options: OptionsView
    createdAt: str | None
    startedAt: str | None
    completedAt: str | None
    expiresAt: str | None
    expired: bool
    webhook: dict[str, Any] | None = Field(description="(extension) Delivery state of this job's webhook.")


class BatchView(BaseModel):
    batchId: str
    name: str = Field(description="The ExtractionBatch object's name.")
    phase: str
    totalJobs: int
    queued: int
    processing: int
    completed: int
    failed: int
    cancelled: int
    cancelRequested: bool
    webhook: str | None
    webhookDelivery: dict[str, Any] | None
    createdAt: str | None
    completedAt: str | None
    jobs: list[JobView]


class UploadResult(BaseModel):
    fileId: str
    size: int


class Health(BaseModel):
    status: str


MEDIA_TYPE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"
"""A media type without parameters (``video/mp4``): it becomes a header of requests to the store."""
MEDIA_TYPE_RE = re.compile(MEDIA_TYPE_PATTERN)


class DirectUploadRequest(BaseModel):
    """(extension, docs/contract.md §7) Body of POST /v1/uploads asking where to PUT the bytes."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255, description="The file's name (informative).")
    size: int = Field(ge=1, description="Bytes the PUT will send: exactly these count against the quota.")
    contentType: str = Field(
        default="application/octet-stream",
        pattern=MEDIA_TYPE_PATTERN,
        description="The file's media type, without parameters; the PUT must send it as Content-Type.",
    )


class DirectUploadTicket(BaseModel):
    """(extension, docs/contract.md §7) Where to PUT an upload's bytes when the store is an object store."""

    fileId: str = Field(description="The upload's id, usable as a source once its bytes have arrived.")
    uploadUrl: str = Field(description="An absolute presigned URL of the store; needs no API key.")
    method: Literal["PUT"] = "PUT"
    headers: dict[str, str] = Field(
        default_factory=dict, description="Headers the PUT must send, exactly (Content-Type, Content-Length)."
    )
    expiresAt: str | None = Field(
        default=None, description="When uploadUrl stops taking the bytes (ISO 8601 UTC)."
    )


# --- webhook events (docs/contract.md §5): job events reuse the status view's shapes ---------------

_TIMESTAMP = Field(description="When the job or batch became terminal (ISO 8601 UTC).")


class JobCompletedEvent(BaseModel):
    """A job completed: its output can be downloaded."""

    event: Literal["job.completed"]
    jobId: str
    batchId: str
    status: Literal["completed"]
    timestamp: str = _TIMESTAMP
    downloadUrl: str
    outputFile: OutputFileView | None


class JobFailedEvent(BaseModel):
    """A job failed, or was cancelled (then `status` is `cancelled` and `error.code` CANCELLED)."""

    event: Literal["job.failed"]
    jobId: str
    batchId: str
    status: Literal["failed", "cancelled"]
    timestamp: str = _TIMESTAMP
    error: JobErrorView


class BatchCompletedEvent(BaseModel):
    """(extension) Every job of the batch is terminal; sent only to the batch-level `webhook`."""

    event: Literal["batch.completed"]
    batchId: str
    status: Literal["completed", "failed"] = Field(
        description="`completed` when every job completed, else `failed`."
    )
    timestamp: str = _TIMESTAMP
    totalJobs: int
    completed: int
    failed: int
    cancelled: int


WebhookEvent = JobCompletedEvent | JobFailedEvent | BatchCompletedEvent
