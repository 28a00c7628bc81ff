"""What a worker tells the operator: progress reports while it runs, one result when it ends.

The result is JSON in the container's termination message (Kubernetes keeps at most 4 KiB of it),
and the exit code says whether a failure is worth retrying, so a Job's ``podFailurePolicy`` can
fail permanent errors at once.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .batch_status import ErrorCode, InputFile, JobError, OutputFile, Step, StepTimings

EXIT_OK = 0
EXIT_INTERNAL = 1
"""Unexpected failure: retried by the Job's backoffLimit."""
EXIT_TRANSIENT = 75
"""Possibly transient (network, timeouts, a full store): retried by the Job's backoffLimit."""
EXIT_PERMANENT = 65
"""Bad input (no audio, not media, too large, bad spec): retrying cannot help; the Job fails at once."""

PERMANENT_CODES = frozenset(
    {
        ErrorCode.SOURCE_TOO_LARGE,
        ErrorCode.INVALID_VIDEO,
        ErrorCode.NO_AUDIO_STREAM,
        ErrorCode.EXTRACTION_FAILED,
    }
)
TERMINATION_MESSAGE_LIMIT = 4096


def exit_code_for(code: ErrorCode, permanent: bool = False, transient: bool = False) -> int:
    """``permanent``: the worker knows this failure would repeat (a 404, a refused address);
    ``transient``: it knows its cause lies outside the job and may pass (a full store)."""
    if transient:
        return EXIT_TRANSIENT
    if permanent or code in PERMANENT_CODES:
        return EXIT_PERMANENT
    if code == ErrorCode.DOWNLOAD_FAILED:
        return EXIT_TRANSIENT
    return EXIT_INTERNAL


class WorkerResult(BaseModel):
    """Exactly one of ``output`` and ``error``; ``inputFile`` when the source was probed."""

    model_config = ConfigDict(extra="ignore")

    output: OutputFile | None = None
    error: JobError | None = None
    inputFile: InputFile | None = None
    timings: StepTimings | None = None
    """Seconds per step, for the operator's metrics (a few dozen bytes of the message's 4 KiB)."""
    permanent: bool = Field(default=False, exclude=True)
    """The worker's verdict that retrying cannot help; the exit code carries it, not the message."""
    transient: bool = Field(default=False, exclude=True)
    """The worker's verdict that retrying later can help (a full store); the exit code carries it."""

    def to_message(self) -> str:
        """JSON under the termination-message limit; long error details are cut first."""
        text = self.model_dump_json(exclude_none=True)
        if len(text.encode()) > TERMINATION_MESSAGE_LIMIT and self.error and self.error.details:
            overflow = len(text.encode()) - TERMINATION_MESSAGE_LIMIT + 16
            details = self.error.details.encode()[: max(0, len(self.error.details.encode()) - overflow)]
            cut = self.model_copy(
                update={
                    "error": self.error.model_copy(update={"details": details.decode(errors="ignore") + "…"})
                }
            )
            text = cut.model_dump_json(exclude_none=True)
        return text


class ProgressReport(BaseModel):
    """Body of the worker's progress POST (bearer token: the job's own HMAC token)."""

    model_config = ConfigDict(extra="ignore")

    jobId: str
    step: Step
    progress: int = Field(ge=0, le=100)  # percent of `step`; the operator maps it to the whole job's
    estimatedTimeRemaining: int | None = None
    inputFile: InputFile | None = None
