"""One typed error base, rendered by one exception handler into the contract's envelope.

Handlers and helpers raise ``ApiError`` subclasses; nothing else decides a status code or an
error code. Unexpected exceptions become ``INTERNAL_ERROR`` with a fixed message: a stack trace
is logged, never sent.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

Details = str | list[dict[str, str]] | None


class ApiError(Exception):
    status = 500
    code = "INTERNAL_ERROR"
    default_message = "Internal error"
    default_headers: dict[str, str] = {}

    def __init__(self, message: str | None = None, details: Details = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.details = details
        self.headers = headers or dict(self.default_headers)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"success": False, "error": error}


def _error(name: str, status: int, code: str, message: str, headers: dict[str, str] | None = None
           ) -> type[ApiError]:
    return type(name, (ApiError,), {"status": status, "code": code, "default_message": message,
                                    "default_headers": headers or {}})


Unauthorized = _error("Unauthorized", 401, "UNAUTHORIZED", "Missing or invalid API key",
                      {"WWW-Authenticate": "APIKey header=\"X-API-Key\""})
Forbidden = _error("Forbidden", 403, "FORBIDDEN", "This API key is not allowed this operation")
InvalidRequest = _error("InvalidRequest", 400, "INVALID_REQUEST", "Invalid request")
InvalidSource = _error("InvalidSource", 400, "INVALID_SOURCE", "Invalid source")
InvalidOutput = _error("InvalidOutput", 400, "INVALID_OUTPUT", "Invalid output")
InvalidJobId = _error("InvalidJobId", 400, "INVALID_JOB_ID", "Malformed id")
TooManyJobs = _error("TooManyJobs", 400, "TOO_MANY_JOBS", "A batch holds at most 10 jobs")
PayloadTooLarge = _error("PayloadTooLarge", 413, "PAYLOAD_TOO_LARGE", "Request body is over the limit")
JobNotFound = _error("JobNotFound", 404, "JOB_NOT_FOUND", "No such job")
JobNotCompleted = _error("JobNotCompleted", 202, "JOB_NOT_COMPLETED", "The job has not completed yet")
FileExpired = _error("FileExpired", 410, "FILE_EXPIRED", "The output was removed after the retention window")
IdempotencyConflict = _error("IdempotencyConflict", 409, "IDEMPOTENCY_CONFLICT",
                             "This Idempotency-Key was used with a different body")
RateLimited = _error("RateLimited", 429, "RATE_LIMITED", "Too many requests for this API key",
                     {"Retry-After": "1"})
QueueFull = _error("QueueFull", 503, "QUEUE_FULL", "The queue is full; retry later", {"Retry-After": "30"})
QuotaExceeded = _error("QuotaExceeded", 413, "QUOTA_EXCEEDED", "The tenant's quota would be exceeded")
StoreFull = _error("StoreFull", 503, "STORE_FULL", "The store cannot take new work now; retry later",
                   {"Retry-After": "60"})
ServiceUnavailable = _error("ServiceUnavailable", 503, "SERVICE_UNAVAILABLE",
                            "The Kubernetes API is unreachable; retry later", {"Retry-After": "5"})
InternalError = ApiError


class JobFailed(ApiError):
    """Download of a failed or cancelled job: 409 carrying the job's own error code."""

    status = 409

    def __init__(self, code: str, message: str, details: Details = None) -> None:
        super().__init__(message, details)
        self.code = code


class RangeNotSatisfiable(ApiError):
    status = 416
    code = "INVALID_REQUEST"
    default_message = "Requested range not satisfiable"


def render(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def install(app: FastAPI) -> None:
    """Route every failure through ``render``."""

    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return render(exc)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        # Starlette's own answers (unknown path, wrong method) keep their status in our envelope.
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            err: ApiError = ApiError("Not found")
            err.status, err.code = 404, "JOB_NOT_FOUND"
        elif exc.status_code == 405:
            err = InvalidRequest("Method not allowed")
            err.status = 405
        else:
            err = InvalidRequest(str(exc.detail))
            err.status = exc.status_code if 400 <= exc.status_code < 500 else 400
        err.headers = dict(exc.headers or {})
        return render(err)

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        # Only path/query/header parameters reach FastAPI's validation (bodies are ours).
        assert isinstance(exc, RequestValidationError)
        details = [{"field": ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]),
                    "message": e["msg"]} for e in exc.errors()]
        return render(InvalidRequest("Invalid request parameters", details))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    # Anything else is caught by ``middleware.CatchAll`` (an app-level ``Exception`` handler would
    # re-raise after answering).
