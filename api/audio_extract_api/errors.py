"""One typed error base, rendered by one exception handler into the contract's envelope.

Handlers and helpers raise ``ApiError`` subclasses; nothing else decides a status code or an
error code. Unexpected exceptions become ``INTERNAL_ERROR`` with a fixed message: a stack trace
is logged, never sent.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

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


API_ERRORS: list[type[ApiError]] = [ApiError]
"""Every (status, code) the API answers with: the one list the OpenAPI document's error codes,
examples and headers are made from."""


def _error(name: str, status: int, code: str, message: str, headers: dict[str, str] | None = None
           ) -> type[ApiError]:
    cls = type(name, (ApiError,), {"status": status, "code": code, "default_message": message,
                                   "default_headers": headers or {}})
    API_ERRORS.append(cls)
    return cls


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
JobNotCompleted = _error("JobNotCompleted", 202, "JOB_NOT_COMPLETED", "The job has not completed yet",
                         {"Retry-After": "5"})
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
NotFound = _error("NotFound", 404, "NOT_FOUND", "No such route")
MethodNotAllowed = _error("MethodNotAllowed", 405, "METHOD_NOT_ALLOWED",
                          "This route does not accept this method")
RangeNotSatisfiable = _error("RangeNotSatisfiable", 416, "INVALID_REQUEST", "Requested range not satisfiable")
InternalError = ApiError

ROUTING_ERRORS: tuple[type[ApiError], ...] = (NotFound, MethodNotAllowed)
"""Answers to requests that reach no operation (so no operation of the OpenAPI document lists them)."""

ApiErrorCode = StrEnum("ApiErrorCode", {cls.code: cls.code for cls in API_ERRORS})  # type: ignore[misc]
ApiErrorCode.__doc__ = "An API error code (CONTRACT §4, §7); a failed job's download carries a job's code."


class JobFailed(ApiError):
    """Download of a failed or cancelled job: 409 carrying the job's own error code."""

    status = 409

    def __init__(self, code: str, message: str, details: Details = None) -> None:
        super().__init__(message, details)
        self.code = code


def render(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> str:
    """Every method the request's path accepts. Starlette's own 405 names the methods of the first
    route that matched the path only, and one path may be served by several routes; asking every
    route about every method relies on nothing but ``matches``, however routers are nested."""
    def accepted(method: str) -> bool:
        scope = {**request.scope, "method": method}
        return any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes)

    return ", ".join(m for m in HTTP_METHODS if accepted(m))


def install(app: FastAPI) -> None:
    """Route every failure through ``render``."""

    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return render(exc)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette's own answers (unknown path, wrong method) in our envelope with our codes.
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            err: ApiError = NotFound()
        elif exc.status_code == 405:
            err = MethodNotAllowed(headers={**(exc.headers or {}), "Allow": allowed_methods(request)})
        else:
            err = InvalidRequest(str(exc.detail), headers=dict(exc.headers or {}))
            err.status = exc.status_code if 400 <= exc.status_code < 500 else 400
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
