"""The ExtractionBatch status: what the operator observed, written only by it.

The operator writes it with these models, the API reads it with them for its views and ``make
crds`` generates the CRD's status schema from them (a test fails on drift).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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


class StatusModel(BaseModel):
    """A model of the status: fields it does not know (a newer operator's) are dropped."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class InputFile(StatusModel):
    """The probed source."""

    name: str | None = Field(default=None, description="The source's file name.")
    size: int | None = Field(default=None, description="Bytes.")
    duration: float | None = Field(default=None, description="Seconds.")
    format: str | None = Field(default=None, description="Container format as ffprobe names it.")


class OutputFile(StatusModel):
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


class StepTimings(StatusModel):
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


class JobError(StatusModel):
    """Why a job failed."""

    code: ErrorCode = Field(description="Job-level error code.")
    message: str = Field(description="Human-readable reason.")
    details: str | None = Field(default=None, description="More detail, e.g. ffmpeg's last lines.")


class Delivery(StatusModel):
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


class JobStatus(StatusModel):
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
    queueReason: str | None = Field(
        default=None,
        description="While queued under Kueue: why its workload waits, in Kueue's words "
        "(e.g. the quota it lacks).",
    )
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


class Condition(StatusModel):
    """A standard Kubernetes condition."""

    type: str = Field(description="Accepted, Running, Complete or Failed.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase reason.")
    message: str = Field(default="", description="Human-readable detail.")
    lastTransitionTime: str = Field(description="When status last changed.")
    observedGeneration: int | None = Field(default=None, description="The generation this was computed from.")


class BatchStatus(StatusModel):
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
