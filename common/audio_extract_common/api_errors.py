"""Every status and error code the API answers with (docs/contract.md §4, §7), as plain data.

One table, two readers: the API makes its exception classes from it (``audio_extract_api.errors``)
and the Python client its typed exceptions (``audio_extract_client.errors``). It imports no web
framework, so a client installs none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True)
class ApiErrorSpec:
    """One answer: its class name, HTTP status, code, default message and headers."""

    name: str
    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


INTERNAL_ERROR = ApiErrorSpec("InternalError", 500, "INTERNAL_ERROR", "Internal error")
UNAUTHORIZED = ApiErrorSpec(
    "Unauthorized",
    401,
    "UNAUTHORIZED",
    "Missing or invalid API key",
    {"WWW-Authenticate": 'APIKey header="X-API-Key"'},
)
FORBIDDEN = ApiErrorSpec("Forbidden", 403, "FORBIDDEN", "This API key is not allowed this operation")
INVALID_REQUEST = ApiErrorSpec("InvalidRequest", 400, "INVALID_REQUEST", "Invalid request")
INVALID_SOURCE = ApiErrorSpec("InvalidSource", 400, "INVALID_SOURCE", "Invalid source")
INVALID_OUTPUT = ApiErrorSpec("InvalidOutput", 400, "INVALID_OUTPUT", "Invalid output")
INVALID_JOB_ID = ApiErrorSpec("InvalidJobId", 400, "INVALID_JOB_ID", "Malformed id")
TOO_MANY_JOBS = ApiErrorSpec("TooManyJobs", 400, "TOO_MANY_JOBS", "A batch holds at most 10 jobs")
PAYLOAD_TOO_LARGE = ApiErrorSpec(
    "PayloadTooLarge", 413, "PAYLOAD_TOO_LARGE", "Request body is over the limit"
)
JOB_NOT_FOUND = ApiErrorSpec("JobNotFound", 404, "JOB_NOT_FOUND", "No such job")
JOB_NOT_COMPLETED = ApiErrorSpec(
    "JobNotCompleted", 202, "JOB_NOT_COMPLETED", "The job has not completed yet", {"Retry-After": "5"}
)
FILE_EXPIRED = ApiErrorSpec(
    "FileExpired", 410, "FILE_EXPIRED", "The output was removed after the retention window"
)
IDEMPOTENCY_CONFLICT = ApiErrorSpec(
    "IdempotencyConflict", 409, "IDEMPOTENCY_CONFLICT", "This Idempotency-Key was used with a different body"
)
RATE_LIMITED = ApiErrorSpec(
    "RateLimited", 429, "RATE_LIMITED", "Too many requests for this API key", {"Retry-After": "1"}
)
QUEUE_FULL = ApiErrorSpec(
    "QueueFull", 503, "QUEUE_FULL", "The queue is full; retry later", {"Retry-After": "30"}
)
QUOTA_EXCEEDED = ApiErrorSpec("QuotaExceeded", 413, "QUOTA_EXCEEDED", "The tenant's quota would be exceeded")
STORE_FULL = ApiErrorSpec(
    "StoreFull", 503, "STORE_FULL", "The store cannot take new work now; retry later", {"Retry-After": "60"}
)
SERVICE_UNAVAILABLE = ApiErrorSpec(
    "ServiceUnavailable",
    503,
    "SERVICE_UNAVAILABLE",
    "The Kubernetes API is unreachable; retry later",
    {"Retry-After": "5"},
)
NOT_FOUND = ApiErrorSpec("NotFound", 404, "NOT_FOUND", "No such route")
METHOD_NOT_ALLOWED = ApiErrorSpec(
    "MethodNotAllowed", 405, "METHOD_NOT_ALLOWED", "This route does not accept this method"
)
# 416 keeps INVALID_REQUEST: the contract has no code of its own for an unsatisfiable Range.
RANGE_NOT_SATISFIABLE = ApiErrorSpec(
    "RangeNotSatisfiable", 416, "INVALID_REQUEST", "Requested range not satisfiable"
)

API_ERROR_SPECS: tuple[ApiErrorSpec, ...] = (
    INTERNAL_ERROR,
    UNAUTHORIZED,
    FORBIDDEN,
    INVALID_REQUEST,
    INVALID_SOURCE,
    INVALID_OUTPUT,
    INVALID_JOB_ID,
    TOO_MANY_JOBS,
    PAYLOAD_TOO_LARGE,
    JOB_NOT_FOUND,
    JOB_NOT_COMPLETED,
    FILE_EXPIRED,
    IDEMPOTENCY_CONFLICT,
    RATE_LIMITED,
    QUEUE_FULL,
    QUOTA_EXCEEDED,
    STORE_FULL,
    SERVICE_UNAVAILABLE,
    NOT_FOUND,
    METHOD_NOT_ALLOWED,
    RANGE_NOT_SATISFIABLE,
)
"""In the order the OpenAPI document lists them."""

ApiErrorCode = StrEnum("ApiErrorCode", {s.code: s.code for s in API_ERROR_SPECS})  # type: ignore[misc]
ApiErrorCode.__doc__ = (
    "An API error code (docs/contract.md §4, §7); a failed job's download carries a job's code."
)
