"""The OpenAPI document: request bodies are parsed by our own code (for the contract's error
codes and limits), so their schemas are declared here and the models' JSON Schemas added to the
components."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .schemas import ErrorEnvelope

DESCRIPTION = """\
Extract audio tracks from videos in batches. Every route is also served under
`/audio-extract/v1/...` (same handlers; only the `/v1/...` copies are listed here).
Errors use the envelope `{"success": false, "error": {"code", "message", "details"}}`.
"""


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


def errors(*statuses: int, retry_after: tuple[int, ...] = ()) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for s in statuses:
        out[s] = {"model": ErrorEnvelope, "description": _WHY.get(s, "Error")}
        if s in retry_after:
            out[s]["headers"] = {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds."}}
    return out


_WHY = {
    400: "Invalid request (INVALID_REQUEST, INVALID_SOURCE, INVALID_OUTPUT, INVALID_JOB_ID, TOO_MANY_JOBS)",
    401: "UNAUTHORIZED: missing, empty or unknown API key",
    403: "FORBIDDEN: the key may not do this",
    404: "JOB_NOT_FOUND",
    405: "Method not allowed",
    409: "Conflict",
    410: "FILE_EXPIRED",
    413: "PAYLOAD_TOO_LARGE, or QUOTA_EXCEEDED (the tenant's upload quota)",
    416: "Range not satisfiable",
    429: "RATE_LIMITED",
    503: "QUEUE_FULL, STORE_FULL (the store is short of space) or SERVICE_UNAVAILABLE",
}


def install(app: FastAPI, models: list[type[BaseModel]]) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=DESCRIPTION, routes=app.routes)
        _, defs = models_json_schema([(m, "validation") for m in models],
                                     ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(defs.get("$defs", {}))
        # Parameter errors are answered 400 INVALID_REQUEST in our envelope, never FastAPI's 422.
        for item in schema.get("paths", {}).values():
            for op in item.values():
                op.get("responses", {}).pop("422", None)
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = build  # type: ignore[method-assign]
