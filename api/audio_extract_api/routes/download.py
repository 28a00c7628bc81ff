"""GET /v1/download/{jobId}: the audio file, streamed from the store, or (extension) a redirect to
the store itself."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from starlette.responses import Response, StreamingResponse

from audio_extract_common.api_models import JobFailedEnvelope
from audio_extract_common.formats import FORMATS

from ..deps import Reader, Svc, find_job
from ..downloads import completed_output, download_response, redirect_response
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
    307: {
        "description": "(extension) With `redirect=true` and an object store: a short-lived presigned "
        "URL of the file in the store (no API key needed there; it names the file as this route does)",
        "headers": {"Location": {"description": "The presigned URL.", "schema": {"type": "string"}}},
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
    redirect: Annotated[
        bool,
        Query(
            description="(extension) `true`: answer 307 to a presigned URL of the file in the store "
            "when the store is an object store (otherwise the bytes, as without it)."
        ),
    ] = False,
) -> Response:
    obj, index = await find_job(svc.kube, jobId, who)
    out = completed_output(job_status(obj, index))
    seconds = svc.settings.download_url_seconds
    if redirect and (moved := await redirect_response(svc.store, jobId, out, seconds)):
        return moved
    return await download_response(svc.store, jobId, out, range_)
