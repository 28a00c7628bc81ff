"""The one exception a step raises to end the job with a contract error code."""

from __future__ import annotations

from audio_extract_common.resource import ErrorCode, JobError


class JobFailure(Exception):
    """Ends the job: ``code`` is a CONTRACT §4 job-level code, ``message`` is for humans."""

    def __init__(self, code: ErrorCode, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.details = details

    def to_error(self) -> JobError:
        return JobError(code=self.code, message=self.message, details=self.details)
