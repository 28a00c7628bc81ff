"""GET /v1/download/{jobId}: the audio file, streamed from the store."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header
from starlette.responses import StreamingResponse

from audio_extract_common.api_models import JobFailedEnvelope
from audio_extract_common.formats import FORMATS
from audio_extract_common.store import output_key

from ..deps import Reader, Svc, find_job
from ..downloads import completed_output, file_response
from ..errors import FileExpired
from ..openapi import errors
from ..views import job_status
from .status import JobIdParam

router = APIRouter(tags=["jobs"])

_AUDIO = {info.media_type: {"schema": {"type": "string", "format": "binary"}} for info in FORMATS.values()}
_FILE_HEADERS = {
    "Content-Disposition": {
        "description": '`attachment; filename="<name>.<ext>"`',
        "schema": {"type": "string"},
    },
    "Content-Length": {"description": "Bytes in this response.", "schema": {"type": "integer"}},
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The audio file", "content": _AUDIO, "headers": _FILE_HEADERS},
    206: {
        "description": "(extension) The requested byte range",
        "content": _AUDIO,
        "headers": {
            **_FILE_HEADERS,
            "Content-Range": {"description": "`bytes <first>-<last>/<size>`", "schema": {"type": "string"}},
        },
    },
    409: {
        "model": JobFailedEnvelope,
        "description": "The job failed or was cancelled: `code` is the job's own",
    },
    **errors(202, 400, 401, 403, 404, 410, 416, 429, 503),
}


@router.get(
    "/download/{jobId}",
    response_class=StreamingResponse,
    responses=_RESPONSES,
    summary="Download a completed job's audio",
)
async def get_download(
    svc: Svc,
    who: Reader,
    jobId: JobIdParam,
    range_: Annotated[str | None, Header(alias="Range", include_in_schema=False)] = None,
) -> StreamingResponse:
    obj, index = await find_job(svc.kube, jobId, who)
    out = completed_output(job_status(obj, index))
    path = svc.store.local_path(out.get("path") or output_key(jobId, out.get("filename", "")))
    if path is None or not path.is_file():
        raise FileExpired()
    return file_response(path, out, range_)
