"""The one exception a step raises to end the job with a contract error code."""

from __future__ import annotations

import errno

from audio_extract_common.batch_status import ErrorCode, JobError
from audio_extract_common.results import PERMANENT_CODES


class JobFailure(Exception):
    """Ends the job: ``code`` is a docs/contract.md §4 job-level code, ``message`` is for humans.

    ``permanent``: retrying cannot help, so the Job fails at once. By default the code decides;
    a DOWNLOAD_FAILED can be either (a 404 is permanent, a timeout is not).
    ``transient``: the cause is outside the job (a full disk) and retrying later can succeed.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        details: str | None = None,
        *,
        permanent: bool | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.details = details
        self.transient = transient
        self.permanent = not transient and (self.code in PERMANENT_CODES if permanent is None else permanent)

    def to_error(self) -> JobError:
        return JobError(code=self.code, message=self.message, details=self.details)


OUT_OF_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
OUT_OF_SPACE_TEXTS = ("No space left on device", "Disk quota exceeded")
"""How ffmpeg reports those errnos (``av_strerror``: the C library's text)."""


def out_of_space(where: str, details: str | None) -> JobFailure:
    """A full store (or scratch volume) is no fault of the job: another tenant's files, an upload
    burst, an expiry pass not run yet. A transient failure, so the Job retries it after its backoff
    instead of failing the job for good (the API refuses new work with STORE_FULL meanwhile)."""
    message = f"the {where} is full: no space left to write the job's files"
    return JobFailure(ErrorCode.INTERNAL_ERROR, message, details, transient=True)
