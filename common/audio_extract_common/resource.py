"""The ExtractionBatch custom resource: the one source of truth for its spec and status.

The API validates request bodies with these models, the operator reads and writes the resource
with them, and ``make crds`` generates ``crds/extractionbatches.yaml`` from them (a test fails on
drift). Field names follow the public contract exactly; every field has a description because
``kubectl explain`` shows it.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic.config import JsonValue

from . import filenames
from .formats import (
    BITRATE_RE,
    CHANNELS,
    SAMPLE_RATES,
    Format,
    Priority,
    Quality,
    check_bitrate,
    check_sample_rate,
)

GROUP = "audioextract.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ExtractionBatch"
PLURAL = "extractionbatches"
SINGULAR = "extractionbatch"
SHORT_NAMES = ["eb", "xb"]
CATEGORIES = ["audio-extract"]

MAX_JOBS = 10
MAX_URL_LENGTH = 2048
_URL_RE = re.compile(r"^https?://[^\s/?#]+", re.IGNORECASE)


def check_url(url: str) -> str:
    """http(s) only, at most 2048 characters, no credentials. Addresses are checked elsewhere."""
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"URL is longer than {MAX_URL_LENGTH} characters")
    if not _URL_RE.match(url):
        raise ValueError("URL must be http:// or https:// with a host")
    authority = re.split(r"[/?#]", url.split("://", 1)[1], maxsplit=1)[0]
    if "@" in authority:
        raise ValueError("URL must not contain credentials")
    return url


HttpUrl = Annotated[str, AfterValidator(check_url), Field(max_length=MAX_URL_LENGTH)]

_URL_CEL: list[JsonValue] = [
    {"rule": "self.matches('^(?i)https?://[^\\\\s/?#]+')", "message": "must be an http:// or https:// URL"},
    {"rule": "!self.matches('^[^:]+://[^/?#]*@')", "message": "must not contain credentials"},
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _one_of(allowed: tuple[int, ...]) -> AfterValidator:
    def check(value: int) -> int:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(map(str, allowed))}")
        return value

    return AfterValidator(check)


# Strict: a JSON `true` or `"44100"` is not a number of anything.
SampleRate = Annotated[
    StrictInt, _one_of(SAMPLE_RATES), Field(json_schema_extra={"enum": list(SAMPLE_RATES)})
]
Channels = Annotated[StrictInt, _one_of(CHANNELS), Field(json_schema_extra={"enum": list(CHANNELS)})]
Seconds = Annotated[StrictFloat, Field(ge=0, allow_inf_nan=False)]


# --- spec ------------------------------------------------------------------------------------


class TrackLanguage(_Model):
    """An audio stream chosen by its language tag."""

    language: str = Field(
        pattern=r"^[a-z]{3}$",
        description="ISO 639-2 code (three lowercase letters, e.g. `eng`), matched against the "
        "stream's language tag; bibliographic and terminology codes (`fre`/`fra`) are one language.",
    )


def _audio_track(value: Any, handler: ValidatorFunctionWrapHandler) -> int | TrackLanguage:
    """One message for the field, not one per branch of the union."""
    try:
        return cast("int | TrackLanguage", handler(value))
    except ValidationError:
        raise ValueError(
            'must be a 0-based index among the audio streams or {"language": "<ISO 639-2 code>"}'
        ) from None


AudioTrack = Annotated[
    Annotated[StrictInt, Field(ge=0)] | TrackLanguage,
    WrapValidator(_audio_track),
]


class Source(_Model):
    """Where the video comes from."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.type != 'url' || has(self.url)",
                    "message": "url is required when type is url",
                    "fieldPath": ".url",
                },
                {
                    "rule": "self.type != 'upload' || has(self.file)",
                    "message": "file is required when type is upload",
                    "fieldPath": ".file",
                },
            ]
        }
    )

    type: Literal["url", "upload"] = Field(
        description="`url`: fetched over HTTP(S); `upload`: an uploaded file."
    )
    url: HttpUrl | None = Field(
        default=None,
        description="The video's http(s) URL (at most 2048 characters, no credentials). "
        "Required when type=url.",
        json_schema_extra={"x-kubernetes-validations": _URL_CEL},
    )
    file: str | None = Field(
        default=None,
        pattern=r"^upl_[0-9a-f]{16}$",
        description="An upload id (`upl_<16 hex>`) returned by POST /v1/uploads. Required when type=upload.",
    )
    audioTrack: AudioTrack | None = Field(
        default=None,
        description="Which audio stream to extract: a 0-based index among the source's audio streams, "
        'or {"language": "eng"}. Default: the stream ffmpeg would choose (the default-flagged one). '
        "No such stream fails the job with NO_AUDIO_STREAM.",
        # Integer or object: a structural schema cannot type that (and CEL cannot see an untyped
        # field), so the CRD keeps the value as given with these value checks, and the operator
        # refuses the rest (an InvalidSpec batch) with the same model the API uses.
        json_schema_extra={
            "x-kubernetes-preserve-unknown-fields": True,
            "minimum": 0,
            "required": ["language"],
            "maxProperties": 1,
        },
    )

    @model_validator(mode="after")
    def _one_location(self) -> Source:
        if self.type == "url" and not self.url:
            raise ValueError("url is required when type is url")
        if self.type == "upload" and not self.file:
            raise ValueError("file is required when type is upload")
        return self


class Trim(_Model):
    """The part of the source to extract, in seconds."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.start) || !has(self.end) || self.start < self.end",
                    "message": "trim start must be before its end",
                },
            ]
        }
    )

    start: Seconds | None = Field(
        default=None, description="Seconds from the beginning (decimals allowed); default 0."
    )
    end: Seconds | None = Field(
        default=None,
        gt=0,
        description="Seconds from the beginning, after start; default the end of the media.",
    )

    @model_validator(mode="after")
    def _in_order(self) -> Trim:
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("trim start must be before its end")
        return self


class Output(_Model):
    """The audio file to produce."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.bitrate) || self.format in ['mp3', 'aac', 'ogg', 'opus']",
                    "message": "bitrate applies to lossy formats only (mp3, aac, ogg, opus)",
                    "fieldPath": ".bitrate",
                },
            ]
        }
    )

    format: Format = Field(
        description="Output container and codec: mp3, aac (ADTS), flac, wav, ogg (Vorbis), opus (Ogg Opus)."
    )
    quality: Quality = Field(default=Quality.medium, description="Quality tier; `bitrate` overrides it.")
    bitrate: str | None = Field(
        default=None,
        pattern=BITRATE_RE.pattern,
        max_length=5,  # what the pattern allows; bounds the CEL rules' cost estimate
        description="Bitrate override like `192k`, lossy formats only, range checked per codec.",
    )
    normalize: bool = Field(
        default=False, description="EBU R128 loudness normalization to -23 LUFS, -1 dBTP."
    )
    preserveMetadata: bool = Field(default=False, description="Copy the source's tags into the output.")
    sampleRate: SampleRate | None = Field(
        default=None,
        description="Output sample rate in Hz; opus takes 8000, 12000, 16000, 24000 or 48000 only. "
        "Default: the source's rate where the format takes it, else the nearest it does.",
    )
    channels: Channels | None = Field(
        default=None, description="1 (mono) or 2 (stereo). Default: the source's, downmixed to 2 above 2."
    )
    trim: Trim | None = Field(
        default=None,
        description="Extract only from `start` to `end` (seconds). A start past the media's end fails "
        "the job with EXTRACTION_FAILED. A trimmed job is always re-encoded, to cut on the exact sample.",
    )

    @model_validator(mode="after")
    def _fits_the_format(self) -> Output:
        if self.bitrate is not None:
            check_bitrate(self.format, self.bitrate)
        if self.sampleRate is not None:
            check_sample_rate(self.format, self.sampleRate)
        return self


class Options(_Model):
    """How the job is named, ordered and reported."""

    filename: str | None = Field(
        default=None,
        max_length=filenames.MAX_RAW_LENGTH,
        description="Output file name without extension; sanitized, never refused: path separators "
        "become `_`, control characters and reserved device names go, Unicode stays, a name ending in "
        "the output's extension does not get it twice. Default: the source's base name, else the job id.",
    )
    priority: Priority = Field(
        default=Priority.normal, description="Admission order: high, normal, low. Never preempts."
    )
    webhook: HttpUrl | None = Field(
        default=None,
        description="Per-job webhook URL; overrides the batch's `webhook`.",
        json_schema_extra={"x-kubernetes-validations": _URL_CEL},
    )


class ExtractionJob(_Model):
    """One extraction: a source in, an audio file out."""

    source: Source = Field(description="Where the video comes from.")
    output: Output = Field(description="The audio file to produce.")
    options: Options = Field(default_factory=Options, description="Naming, priority and webhook.")


JobIndex = Annotated[int, Field(ge=0, lt=MAX_JOBS, description="A 0-based job index.")]


class BatchSpec(_Model):
    """The desired batch: the same body as POST /v1/batch, plus cancellation."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                # The operator builds one Job per entry when the batch is created; later edits
                # could never reach them, so the API server refuses them instead.
                {"rule": "self.jobs == oldSelf.jobs", "message": "jobs are immutable", "fieldPath": ".jobs"},
                {
                    "rule": "!has(oldSelf.cancel) || !oldSelf.cancel || (has(self.cancel) && self.cancel)",
                    "message": "a cancelled batch cannot be resumed",
                    "fieldPath": ".cancel",
                },
                {
                    "rule": "!has(self.cancelJobs) || self.cancelJobs.all(i, i < size(self.jobs))",
                    "message": "cancelJobs names a job index the batch does not have",
                    "fieldPath": ".cancelJobs",
                },
            ]
        }
    )

    jobs: list[ExtractionJob] = Field(min_length=1, max_length=MAX_JOBS, description="1 to 10 extractions.")
    webhook: HttpUrl | None = Field(
        default=None,
        description="Batch-level webhook URL: job events (unless a job names its own) and batch.completed.",
        json_schema_extra={"x-kubernetes-validations": _URL_CEL},
    )
    cancel: bool = Field(
        default=False, description="Set to true to cancel every unfinished job of the batch."
    )
    cancelJobs: list[JobIndex] = Field(
        default_factory=list,
        max_length=MAX_JOBS,
        description="Indexes (0-based) of single jobs to cancel.",
    )

    @model_validator(mode="after")
    def _cancel_indexes_exist(self) -> BatchSpec:
        if any(i >= len(self.jobs) for i in self.cancelJobs):
            raise ValueError("cancelJobs names a job index the batch does not have")
        return self


# --- status ----------------------------------------------------------------------------------


class JobState(StrEnum):
    queued = "queued"
    processing = "processing"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL_STATES = frozenset({JobState.completed, JobState.failed, JobState.cancelled})


class Step(StrEnum):
    downloading_video = "downloading_video"
    analyzing_video = "analyzing_video"
    extracting_audio = "extracting_audio"
    finalizing = "finalizing"


class ErrorCode(StrEnum):
    """Job-level error codes: a closed list (docs/contract.md §4)."""

    DOWNLOAD_FAILED = "DOWNLOAD_FAILED"
    SOURCE_TOO_LARGE = "SOURCE_TOO_LARGE"
    INVALID_VIDEO = "INVALID_VIDEO"
    NO_AUDIO_STREAM = "NO_AUDIO_STREAM"
    EXTRACTION_FAILED = "EXTRACTION_FAILED"
    TIMEOUT = "TIMEOUT"
    CANCELLED = "CANCELLED"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class Phase(StrEnum):
    Queued = "Queued"
    Running = "Running"
    Succeeded = "Succeeded"
    """Every job completed."""
    Failed = "Failed"
    """Every job is terminal and at least one failed or was cancelled."""


class _Status(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class InputFile(_Status):
    """The probed source."""

    name: str | None = Field(default=None, description="The source's file name.")
    size: int | None = Field(default=None, description="Bytes.")
    duration: float | None = Field(default=None, description="Seconds.")
    format: str | None = Field(default=None, description="Container format as ffprobe names it.")


class OutputFile(_Status):
    """The produced audio file."""

    filename: str = Field(description="File name with extension.")
    path: str = Field(description="Path inside the store, `<jobId>/<filename>`.")
    size: int = Field(description="Bytes.")
    duration: float | None = Field(default=None, description="Seconds.")
    format: str = Field(description="Output format (mp3, aac, flac, wav, ogg, opus).")
    bitrate: str | None = Field(default=None, description="Average bitrate like `192k`.")
    sampleRate: int | None = Field(default=None, description="Sample rate of the output, Hz.")
    channels: int | None = Field(default=None, description="Channels of the output.")
    transcoded: bool = Field(default=True, description="False when the audio was copied without re-encoding.")


class StepTimings(_Status):
    """Seconds the worker spent in each step of its last attempt (only in the resource's status:
    the API's views do not show it). A step not reached stays unset."""

    download: float | None = Field(default=None, ge=0, description="Fetching the source, seconds.")
    probe: float | None = Field(default=None, ge=0, description="Probing the source, seconds.")
    encode: float | None = Field(
        default=None, ge=0, description="ffmpeg (loudness passes included), seconds."
    )
    store: float | None = Field(
        default=None, ge=0, description="Describing and publishing the output, seconds."
    )


class JobError(_Status):
    """Why a job failed."""

    code: ErrorCode = Field(description="Job-level error code.")
    message: str = Field(description="Human-readable reason.")
    details: str | None = Field(default=None, description="More detail, e.g. ffmpeg's last lines.")


class Delivery(_Status):
    """One webhook event's delivery state (at least once, Standard Webhooks)."""

    event: str = Field(description="Event type: job.completed, job.failed or batch.completed.")
    url: str = Field(description="Target URL.")
    id: str = Field(description="The `webhook-id`: stable across retries of this event.")
    timestamp: str = Field(description="When the event happened (ISO 8601 UTC).")
    state: Literal["pending", "delivered", "failed"] = Field(
        default="pending", description="pending: still trying; delivered: a 2xx came back; failed: gave up."
    )
    attempts: int = Field(default=0, description="Attempts made so far.")
    nextAttemptAt: str | None = Field(
        default=None, description="When the next attempt is due (pending only)."
    )
    lastStatusCode: int | None = Field(default=None, description="HTTP status of the last attempt, if any.")
    lastError: str | None = Field(
        default=None, description="Error of the last attempt, if no status came back."
    )
    deliveredAt: str | None = Field(default=None, description="When a 2xx came back.")


class JobStatus(_Status):
    """Observed state of one job."""

    index: int = Field(description="Position in spec.jobs.")
    jobId: str = Field(description="Public job id (`job_<16 hex>`).")
    jobName: str = Field(description="Name of the batch/v1 Job running it.")
    status: JobState = Field(
        default=JobState.queued, description="queued, processing, completed, failed or cancelled."
    )
    currentStep: Step | None = Field(default=None, description="Current step; null while queued.")
    progress: int = Field(default=0, ge=0, le=100, description="0-100.")
    estimatedTimeRemaining: int | None = Field(default=None, description="Seconds, when known.")
    createdAt: str | None = Field(default=None, description="When the job was accepted.")
    startedAt: str | None = Field(default=None, description="When its Job was admitted.")
    completedAt: str | None = Field(default=None, description="When it became terminal.")
    expiresAt: str | None = Field(default=None, description="When the output is removed.")
    expired: bool = Field(default=False, description="True once the output was removed after retention.")
    inputFile: InputFile | None = Field(default=None, description="The probed source; null until probed.")
    outputFile: OutputFile | None = Field(default=None, description="The result; null until completed.")
    error: JobError | None = Field(default=None, description="Why it failed; failed and cancelled only.")
    webhook: Delivery | None = Field(default=None, description="Delivery of this job's terminal event.")
    timings: StepTimings | None = Field(
        default=None,
        description="Seconds the worker spent per step (operator metrics; not in the API's views).",
    )


class Condition(_Status):
    """A standard Kubernetes condition."""

    type: str = Field(description="Accepted, Running, Complete or Failed.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase reason.")
    message: str = Field(default="", description="Human-readable detail.")
    lastTransitionTime: str = Field(description="When status last changed.")
    observedGeneration: int | None = Field(default=None, description="The generation this was computed from.")


class BatchStatus(_Status):
    """Observed state of the batch, written only by the operator."""

    batchId: str | None = Field(default=None, description="Public batch id (`batch_<16 hex>`).")
    phase: Phase | None = Field(default=None, description="Queued, Running, Succeeded or Failed.")
    observedGeneration: int | None = Field(default=None, description="The spec generation last acted on.")
    total: int = Field(default=0, description="Number of jobs.")
    queued: int = Field(default=0, description="Jobs queued.")
    processing: int = Field(default=0, description="Jobs processing.")
    completed: int = Field(default=0, description="Jobs completed.")
    failed: int = Field(default=0, description="Jobs failed or cancelled.")
    jobs: list[JobStatus] = Field(
        default_factory=list, description="One entry per spec.jobs item, same order."
    )
    conditions: list[Condition] = Field(default_factory=list, description="Standard conditions.")
    webhook: Delivery | None = Field(
        default=None, description="Delivery of batch.completed to the batch webhook."
    )
    completedAt: str | None = Field(default=None, description="When every job became terminal.")


def manifest(
    name: str,
    spec: BatchSpec,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An ExtractionBatch object ready to create."""
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": meta,
        "spec": spec.model_dump(mode="json", exclude_none=True),
    }
