"""The one exception a step raises to end the job with a contract error code."""

from __future__ import annotations

from audio_extract_common.resource import ErrorCode, JobError
from audio_extract_common.results import PERMANENT_CODES


class JobFailure(Exception):
    """Ends the job: ``code`` is a CONTRACT §4 job-level code, ``message`` is for humans.

    ``permanent``: retrying cannot help, so the Job fails at once. By default the code decides;
    a DOWNLOAD_FAILED can be either (a 404 is permanent, a timeout is not).
    """

    def __init__(self, code: ErrorCode, message: str, details: str | None = None, *,
                 permanent: bool | None = None) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.details = details
        self.permanent = self.code in PERMANENT_CODES if permanent is None else permanent

    def to_error(self) -> JobError:
        return JobError(code=self.code, message=self.message, details=self.details)
