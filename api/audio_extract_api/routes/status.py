"""GET /v1/status/{jobId}."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from audio_extract_common.api_models import Envelope, JobView

from .. import views
from ..deps import JOB_ID_PATTERN, Reader, Svc, find_job
from ..envelope import ok
from ..openapi import errors

router = APIRouter(tags=["jobs"])

JobIdParam = Annotated[
    str, Path(json_schema_extra={"pattern": JOB_ID_PATTERN}, description="`job_` + 16 lowercase hex.")
]


@router.get(
    "/status/{jobId}",
    response_model=Envelope[JobView],
    responses=errors(400, 401, 403, 404, 429, 503),
    summary="A job's status, progress and result",
)
async def get_status(svc: Svc, who: Reader, jobId: JobIdParam) -> JSONResponse:
    obj, index = await find_job(svc.kube, jobId, who)
    return ok(views.job_view(obj, index, svc.settings.public_prefix, links=await svc.links.of(obj, [index])))
