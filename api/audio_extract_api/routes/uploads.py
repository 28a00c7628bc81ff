"""(extension) POST /v1/uploads: a file to use as `source: {"type": "upload", "file": ...}`, its bytes
sent here (raw or multipart) or, with an object store, straight to the store (docs/contract.md §7)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from audio_extract_common.api_models import DirectUploadTicket, Envelope, UploadResult

from .. import bodies
from ..auth import Principal
from ..deps import Services, Svc, Writer, is_json, read_json_body
from ..direct_uploads import offer_upload
from ..envelope import ok
from ..errors import ApiError, InvalidRequest
from ..openapi import errors
from ..uploads import receive_upload

router = APIRouter(tags=["uploads"])

DESCRIPTION = """\
Three forms, told apart by `Content-Type`:

- the file's bytes as the body (any type but JSON), streamed into the store → 201 `{fileId, size}`;
- a multipart form whose `file` part holds them → 201 `{fileId, size}`;
- (extension) `application/json` `{"filename", "size", "contentType"}`: where to send the bytes
  instead. With an object store → 201 `{fileId, uploadUrl, method, headers, expiresAt}`: PUT the
  file's bytes to `uploadUrl` with exactly those `headers`, before `expiresAt`; no API key goes
  there. The upload is a usable source once its bytes have arrived (until then a submission naming
  it gets 400 `INVALID_SOURCE`, "upload not complete"); its declared `size` counts against the
  tenant's quota from now on. A service storing files on a volume answers 400 `INVALID_REQUEST`:
  send the bytes here.
"""

# The body is required (none, or an empty one, is 400 INVALID_REQUEST), yet declared optional:
# openapi-python-client (0.29) generates a module that cannot be imported for a required body with
# several media types (openapi-generators/openapi-python-client#1451). The description says it.
_BODY = {
    "requestBody": {
        "required": False,
        "description": "Required: the file (raw bytes, or a multipart form with one `file` part), or "
        "(extension) a JSON request for a direct upload's URL.",
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            "application/json": {"schema": {"$ref": "#/components/schemas/DirectUploadRequest"}},
        },
    }
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {"description": "Stored (the bytes were sent), or (extension) where to PUT them (a direct upload)"},
    **errors(400, 401, 403, 413, 429, 503),
}


def content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise InvalidRequest("Invalid Content-Length")
    return int(value)


@router.post(
    "/uploads",
    status_code=201,
    response_model=Envelope[UploadResult] | Envelope[DirectUploadTicket],
    openapi_extra=_BODY,
    responses=_RESPONSES,
    summary="(extension) Upload a video (raw or multipart), or ask where to PUT it",
    description=DESCRIPTION,
)
async def post_upload(request: Request, svc: Svc, who: Writer) -> JSONResponse:
    try:
        return await (_direct if is_json(request) else _streamed)(request, svc, who)
    except ApiError as e:
        svc.metrics.uploads_refused.labels(e.code, who.tenant).inc()
        raise


async def _streamed(request: Request, svc: Services, who: Principal) -> JSONResponse:
    file_id, size = await receive_upload(
        svc.store,
        svc.space,
        svc.quota,
        who,
        request.headers.get("content-type"),
        content_length(request),
        request.stream(),
        svc.settings.max_upload_bytes,
    )
    svc.metrics.uploads.labels(who.tenant).inc()
    svc.metrics.upload_bytes.labels(who.tenant).inc(size)
    return ok({"fileId": file_id, "size": size}, 201, "Upload stored")


async def _direct(request: Request, svc: Services, who: Principal) -> JSONResponse:
    s = svc.settings
    body = bodies.parse_json(await read_json_body(request, s.max_body_bytes), s.max_json_depth)
    asked = bodies.parse_direct_upload(body)
    ticket = await offer_upload(
        svc.store, svc.space, svc.quota, who, asked, s.max_upload_bytes, s.upload_url_seconds
    )
    svc.metrics.direct_uploads.labels(who.tenant).inc()
    return ok(ticket.model_dump(), 201, "PUT the file's bytes to uploadUrl")
