"""(extension) POST /v1/uploads: a file to use as `source: {"type": "upload", "file": ...}`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from audio_extract_common.api_models import Envelope, UploadResult

from ..deps import Svc, Writer
from ..envelope import ok
from ..errors import ApiError, InvalidRequest
from ..openapi import errors
from ..uploads import receive_upload

router = APIRouter(tags=["uploads"])

# The body is required (none, or an empty one, is 400 INVALID_REQUEST), yet declared optional:
# openapi-python-client (0.29) generates a module that cannot be imported for a required body with
# several media types (openapi-generators/openapi-python-client#1451). The description says it.
_BODY = {
    "requestBody": {
        "required": False,
        "description": "The file (required): raw bytes or a multipart form with one `file` part.",
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
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
    response_model=Envelope[UploadResult],
    openapi_extra=_BODY,
    responses=errors(400, 401, 403, 413, 429, 503),
    summary="(extension) Upload a video (raw or multipart)",
)
async def post_upload(request: Request, svc: Svc, who: Writer) -> JSONResponse:
    try:
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
    except ApiError as e:
        svc.metrics.uploads_refused.labels(e.code, who.tenant).inc()
        raise
    svc.metrics.uploads.labels(who.tenant).inc()
    svc.metrics.upload_bytes.labels(who.tenant).inc(size)
    return ok({"fileId": file_id, "size": size}, 201, "Upload stored")
