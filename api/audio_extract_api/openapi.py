"""The OpenAPI 3.1 document: request bodies are parsed by our own code (for the contract's error
codes and limits), so their schemas are declared here and the models' JSON Schemas added to the
components. Error responses, their codes and headers come from ``errors.API_ERRORS``; examples from
``openapi_examples``; the webhook events from ``openapi_webhooks``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from audio_extract_common.api_models import ErrorEnvelope

from . import openapi_examples as examples
from . import openapi_webhooks
from .errors import API_ERRORS, ROUTING_ERRORS

DESCRIPTION = """\
Extract audio tracks from videos in batches.

Every route under `/v1/...` is also served under `/audio-extract/v1/...` (same handlers; each path
lists both as its `servers`). The `statusUrl` and `downloadUrl` the API returns use the second
prefix by default.

Errors use the envelope `{"success": false, "error": {"code", "message", "details"}}`; `code` is an
`ApiErrorCode`, except on the download of a failed job, which carries the job's `JobErrorCode`.
A path no route serves answers 404 `NOT_FOUND`; a route asked with a method it does not accept
answers 405 `METHOD_NOT_ALLOWED` with an `Allow` header.

Webhooks are signed as Standard Webhooks 1.0 describes (`webhook-id`, `webhook-timestamp`,
`webhook-signature`); see `webhooks`.
"""

SERVERS = [{"url": "/", "description": "This service (the host that serves this document)"}]
PREFIXED_SERVERS = [
    {"url": "/", "description": "Routes under /v1"},
    {"url": "/audio-extract", "description": "The same routes under /audio-extract/v1"},
]

HEADERS: dict[str, dict[str, Any]] = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "WWW-Authenticate": {
        "description": 'How to authenticate: `APIKey header="X-API-Key"`.',
        "schema": {"type": "string"},
    },
    "Allow": {"description": "The methods the route accepts.", "schema": {"type": "string"}},
}
SUCCESS_HEADERS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    (op, "202"): {
        "Idempotent-Replayed": {
            "description": "(extension) `true` when an Idempotency-Key replayed an earlier batch.",
            "schema": {"type": "string", "enum": ["true"]},
        }
    }
    for op in ("post_batch", "post_extract")
}


def operation_id(route: APIRoute) -> str:
    """The handler's name (`post_batch`, `get_status`...): what generated clients call their functions."""
    return route.name


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        }
    }


def error_headers(status: int) -> dict[str, dict[str, Any]]:
    names = {h for cls in API_ERRORS if cls.status == status for h in cls.default_headers}
    return {name: HEADERS[name] for name in sorted(names)}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error responses of an operation: codes, descriptions and headers from ``API_ERRORS``."""
    out: dict[int | str, dict[str, Any]] = {}
    for s in statuses:
        codes = [cls for cls in API_ERRORS if cls.status == s and cls not in ROUTING_ERRORS]
        out[s] = {
            "model": ErrorEnvelope,
            "description": "; ".join(f"`{c.code}`: {c.default_message}" for c in codes) or "Error",
        }
        if headers := error_headers(s):
            out[s]["headers"] = headers
    return out


def _drop_kubernetes_keywords(node: Any) -> Any:
    """The resource models carry `x-kubernetes-*` (CEL rules for the CRD): not for API clients."""
    if isinstance(node, dict):
        return {k: _drop_kubernetes_keywords(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if isinstance(node, list):
        return [_drop_kubernetes_keywords(v) for v in node]
    return node


def _schema_name(media: dict[str, Any]) -> str:
    return media.get("schema", {}).get("$ref", "").rpartition("/")[2]


def _add_examples(op: dict[str, Any]) -> None:
    op_id = op["operationId"]
    for param in op.get("parameters", []):
        if param["name"] in examples.PARAMETERS:
            param["example"] = examples.PARAMETERS[param["name"]]
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    if body is not None and op_id in examples.REQUESTS:
        body["examples"] = examples.REQUESTS[op_id]
    for status, response in op.get("responses", {}).items():
        if (op_id, status) in SUCCESS_HEADERS:
            response["headers"] = {**response.get("headers", {}), **SUCCESS_HEADERS[(op_id, status)]}
        media = response.get("content", {}).get("application/json")
        if media is None:
            continue
        if (op_id, status) in examples.RESPONSES:
            media["examples"] = examples.RESPONSES[(op_id, status)]
        elif _schema_name(media) == "ErrorEnvelope" and status.isdigit():
            media["examples"] = examples.errors_for(int(status))
        elif _schema_name(media) == "JobFailedEnvelope":
            media["examples"] = examples.JOB_FAILED


def _add_webhook_examples(doc: dict[str, Any]) -> None:
    for item in doc.get("webhooks", {}).values():
        op = item["post"]
        op["requestBody"]["content"]["application/json"]["examples"] = examples.WEBHOOKS[op["operationId"]]
        for param in op.get("parameters", []):
            param["example"] = examples.WEBHOOK_HEADERS[param["name"]]


def build(app: FastAPI, models: list[type[BaseModel]]) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=DESCRIPTION,
        routes=app.routes,
        webhooks=openapi_webhooks.router.routes,
        servers=SERVERS,
    )
    _, defs = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    components.update(defs.get("$defs", {}))
    # Parameter errors are answered 400 INVALID_REQUEST in our envelope, never FastAPI's 422.
    for path, item in doc.get("paths", {}).items():
        if path.startswith("/v1/"):
            item["servers"] = PREFIXED_SERVERS
        for op in item.values():
            if isinstance(op, dict) and "responses" in op:
                op["responses"].pop("422", None)
                _add_examples(op)
    for item in doc.get("webhooks", {}).values():
        item["post"]["responses"].pop("422", None)
        item["post"]["responses"].pop("200", None)  # FastAPI's default; "2XX" says what counts
    _add_webhook_examples(doc)
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    return _drop_kubernetes_keywords(doc)


def install(app: FastAPI, models: list[type[BaseModel]]) -> None:
    def openapi() -> dict[str, Any]:
        if not app.openapi_schema:
            app.openapi_schema = build(app, models)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
