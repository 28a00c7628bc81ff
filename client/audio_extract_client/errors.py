"""Typed exceptions for the API's error codes, made from the table the API itself uses.

Every failure the API answers is raised as one class per code (``QueueFull``, ``JobNotFound``,
…), each under a family that says what the caller can do about it::

    ApiError
    ├── RequestRefused      400, 405, 413: fix the request (InvalidSource, TooManyJobs, QuotaExceeded, …)
    ├── AuthError           401, 403: the key (Unauthorized, Forbidden)
    ├── NotFoundError       404 (JobNotFound, NotFound)
    ├── ConflictError       409 (IdempotencyConflict)
    ├── NotReady            202 JobNotCompleted: ask again later
    ├── Gone                410 FileExpired
    ├── JobFailed           409 on a download: the job's own error code (``job_code``)
    ├── Unavailable         429, 503, after the client's retries (RateLimited, QueueFull, StoreFull, …)
    └── ServerError         500 and anything unexpected
    TransportError          no answer at all (connection refused, timeout), after retries
"""

from __future__ import annotations

from typing import Any

from audio_extract_common import api_errors as codes
from audio_extract_common.api_models import JobErrorCode


class ApiError(Exception):
    """An error answer of the API: ``status``, ``code``, ``message``, ``details``, ``headers``."""

    status = codes.INTERNAL_ERROR.status
    code = codes.INTERNAL_ERROR.code

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.details = details
        self.headers = headers or {}

    def __str__(self) -> str:
        return f"{self.code} ({self.status}): {self.message}"


class RequestRefused(ApiError):
    """The request itself was refused (400, 405, 413): sending it again will not help."""


class AuthError(ApiError):
    """The API key is missing, unknown (401) or not allowed this operation (403)."""


class NotFoundError(ApiError):
    """No such job, batch (or one of another tenant), or route."""


class ConflictError(ApiError):
    """The request conflicts with an earlier one (an Idempotency-Key reused with another body)."""


class NotReady(ApiError):
    """The job has not completed yet (download before completion)."""


class Gone(ApiError):
    """The output was removed after the retention window."""


class Unavailable(ApiError):
    """The service asked to come back later (429, 503) more often, or for longer, than the retry
    policy allows; ``retry_after`` is its last ``Retry-After`` header, if it sent one."""

    @property
    def retry_after(self) -> str | None:
        return self.headers.get("retry-after")


class ServerError(ApiError):
    """An unexpected failure on the server (500), or an answer that is not the contract's."""


class JobFailed(ApiError):
    """The download of a job that failed or was cancelled: ``job_code`` is the job's error code
    (``DOWNLOAD_FAILED``, ``NO_AUDIO_STREAM``, ``CANCELLED``, …)."""

    status = 409

    @property
    def job_code(self) -> JobErrorCode | str:
        return JobErrorCode(self.code) if self.code in JobErrorCode.__members__ else self.code


class TransportError(Exception):
    """No answer from the API (connection refused or reset, timeout), after the retries allowed."""


_FAMILY: dict[int, type[ApiError]] = {
    400: RequestRefused,
    405: RequestRefused,
    413: RequestRefused,
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: ConflictError,
    202: NotReady,
    410: Gone,
    416: RequestRefused,
    429: Unavailable,
    503: Unavailable,
    500: ServerError,
}

BY_CODE: dict[str, type[ApiError]] = {}
"""The class raised for each API error code."""


def _error(spec: codes.ApiErrorSpec) -> type[ApiError]:
    cls = type(spec.name, (_FAMILY.get(spec.status, ApiError),), {"status": spec.status, "code": spec.code})
    cls.__doc__ = f"{spec.code} ({spec.status}): {spec.message}."
    cls.__module__ = __name__
    # The 416 answer shares INVALID_REQUEST with the 400 one: the code names the 400 class.
    BY_CODE.setdefault(spec.code, cls)
    return cls


InternalError = _error(codes.INTERNAL_ERROR)
Unauthorized = _error(codes.UNAUTHORIZED)
Forbidden = _error(codes.FORBIDDEN)
InvalidRequest = _error(codes.INVALID_REQUEST)
InvalidSource = _error(codes.INVALID_SOURCE)
InvalidOutput = _error(codes.INVALID_OUTPUT)
InvalidJobId = _error(codes.INVALID_JOB_ID)
TooManyJobs = _error(codes.TOO_MANY_JOBS)
PayloadTooLarge = _error(codes.PAYLOAD_TOO_LARGE)
JobNotFound = _error(codes.JOB_NOT_FOUND)
JobNotCompleted = _error(codes.JOB_NOT_COMPLETED)
FileExpired = _error(codes.FILE_EXPIRED)
IdempotencyConflict = _error(codes.IDEMPOTENCY_CONFLICT)
RateLimited = _error(codes.RATE_LIMITED)
QueueFull = _error(codes.QUEUE_FULL)
QuotaExceeded = _error(codes.QUOTA_EXCEEDED)
StoreFull = _error(codes.STORE_FULL)
ServiceUnavailable = _error(codes.SERVICE_UNAVAILABLE)
NotFound = _error(codes.NOT_FOUND)
MethodNotAllowed = _error(codes.METHOD_NOT_ALLOWED)
RangeNotSatisfiable = _error(codes.RANGE_NOT_SATISFIABLE)


def from_response(status: int, body: Any, headers: dict[str, str]) -> ApiError:
    """The exception for an error answer: its envelope's code picks the class."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        family = _FAMILY.get(status, ServerError if status >= 500 else ApiError)
        return family(
            f"HTTP {status} without the API's error envelope",
            status=status,
            code=f"HTTP_{status}",
            headers=headers,
        )
    code, details = error["code"], error.get("details")
    message = str(error.get("message") or code)
    if status == 409 and code in JobErrorCode.__members__:
        return JobFailed(message, status=status, code=code, details=details, headers=headers)
    cls = BY_CODE.get(code) or _FAMILY.get(status, ApiError)
    return cls(message, status=status, code=code, details=details, headers=headers)
