"""(extension) POST /v1/uploads: a file to use as `source: {"type": "upload", "file": ...}`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..deps import Svc, Writer
from ..envelope import ok
from ..openapi import errors
from ..schemas import Envelope, UploadResult
from ..uploads import save_upload

router = APIRouter(tags=["uploads"])

_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
}}}


@router.post("/uploads", status_code=201, response_model=Envelope[UploadResult], openapi_extra=_BODY,
             responses=errors(400, 401, 403, 413, 429, 503),
             summary="(extension) Upload a video (raw or multipart)")
async def post_upload(request: Request, svc: Svc, who: Writer) -> JSONResponse:
    file_id, size = await save_upload(svc.store, request.headers.get("content-type"), request.stream(),
                                      svc.settings.max_upload_bytes)
    return ok({"fileId": file_id, "size": size}, 201, "Upload stored")
