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
from starlette.routing import Match

from audio_extract_common import api_errors as codes
from audio_extract_common.objectstore import StoreError

log = logging.getLogger(__name__)

Details = str | list[dict[str, str]] | None


class ApiError(Exception):
    status = codes.INTERNAL_ERROR.status
    code = codes.INTERNAL_ERROR.code
    default_message = codes.INTERNAL_ERROR.message
    default_headers: dict[str, str] = {}

    def __init__(
        self, message: str | None = None, details: Details = None, headers: dict[str, str] | None = None
    ) -> None:
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
examples and headers are made from (in the order of ``codes.API_ERROR_SPECS``)."""


def _error(spec: codes.ApiErrorSpec) -> type[ApiError]:
    cls = type(
        spec.name,
        (ApiError,),
        {
            "status": spec.status,
            "code": spec.code,
            "default_message": spec.message,
            "default_headers": spec.headers,
        },
    )
    API_ERRORS.append(cls)
    return cls


# The table lives in common so the Python client raises the same codes without importing FastAPI.
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
InternalError = ApiError

ROUTING_ERRORS: tuple[type[ApiError], ...] = (NotFound, MethodNotAllowed)
"""Answers to requests that reach no operation (so no operation of the OpenAPI document lists them)."""

assert [(c.status, c.code) for c in API_ERRORS] == [(s.status, s.code) for s in codes.API_ERROR_SPECS]


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
        details = [
            {"field": ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]), "message": e["msg"]}
            for e in exc.errors()
        ]
        return render(InvalidRequest("Invalid request parameters", details))

    async def store_error(request: Request, exc: Exception) -> JSONResponse:
        # The object store refused or did not answer: like an unreachable Kubernetes API, for now.
        log.warning("the store failed on %s %s: %s", request.method, request.url.path, exc)
        return render(ServiceUnavailable("The store is unavailable; retry later"))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StoreError, store_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    # Anything else is caught by ``middleware.CatchAll`` (an app-level ``Exception`` handler would
    # re-raise after answering).
