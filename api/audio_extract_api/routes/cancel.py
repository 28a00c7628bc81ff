"""(extension) POST /v1/jobs/{jobId}/cancel and POST /v1/batch/{batchId}/cancel."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from audio_extract_common.api_models import BatchView, Envelope, JobView
from audio_extract_common.batch_status import TERMINAL_STATES
from audio_extract_common.kube import Conflict

from .. import views
from ..deps import Svc, Writer, find_batch, find_job
from ..envelope import ok
from ..errors import JobNotFound, ServiceUnavailable
from ..kube import Kube
from ..openapi import errors
from .batch import BatchIdParam
from .status import JobIdParam

router = APIRouter(tags=["cancel"])


async def request_job_cancel(kube: Kube, name: str, index: int) -> None:
    """Add ``index`` to spec.cancelJobs with an optimistic-concurrency merge patch."""
    for _ in range(5):
        obj = await kube.get(name)
        if obj is None:
            raise JobNotFound()
        current = list((obj.get("spec") or {}).get("cancelJobs") or [])
        if index in current:
            return
        patch = {
            "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
            "spec": {"cancelJobs": [*current, index]},
        }
        try:
            if await kube.patch(name, patch) is None:
                raise JobNotFound()
            return
        except Conflict:
            continue
    raise ServiceUnavailable("The batch is changing too fast; retry")


@router.post(
    "/jobs/{jobId}/cancel",
    status_code=202,
    response_model=Envelope[JobView],
    responses={
        200: {"model": Envelope[JobView], "description": "Already finished"},
        **errors(400, 401, 403, 404, 429, 503),
    },
    summary="(extension) Cancel one job",
)
async def cancel_job(svc: Svc, who: Writer, jobId: JobIdParam) -> JSONResponse:
    obj, index = await find_job(svc.kube, jobId, who)
    prefix = svc.settings.public_prefix
    if views.job_view(obj, index, prefix)["status"] in TERMINAL_STATES:
        view = views.job_view(obj, index, prefix, links=await svc.links.of(obj, [index]))
        return ok(view, 200, "Job already finished; nothing to cancel")
    await request_job_cancel(svc.kube, obj["metadata"]["name"], index)
    fresh = await svc.kube.get(obj["metadata"]["name"]) or obj
    return ok(views.job_view(fresh, index, prefix), 202, "Cancellation requested")


@router.post(
    "/batch/{batchId}/cancel",
    status_code=202,
    response_model=Envelope[BatchView],
    responses=errors(400, 401, 403, 404, 429, 503),
    summary="(extension) Cancel every unfinished job",
)
async def cancel_batch(svc: Svc, who: Writer, batchId: BatchIdParam) -> JSONResponse:
    obj = await find_batch(svc.kube, batchId, who)
    patched = await svc.kube.patch(obj["metadata"]["name"], {"spec": {"cancel": True}})
    if patched is None:
        raise JobNotFound("No such batch")
    view = views.batch_view(patched, svc.settings.public_prefix, links=await svc.links.of(patched))
    return ok(view, 202, "Cancellation requested")
