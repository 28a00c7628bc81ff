"""POST /v1/extract: one job, as a batch of one."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from audio_extract_common.api_models import Envelope, ExtractAccepted
from audio_extract_common.batch_spec import ExtractionJob

from .. import bodies, views
from ..deps import Svc, Writer, read_json_body
from ..envelope import ok
from ..errors import ApiError
from ..openapi import errors, json_body
from ..submit import check_idempotency_key
from .batch import IdempotencyKey, accept, replay_header

router = APIRouter(tags=["batches"])


def estimated_time(ahead: int, base: int, per_queued: int) -> int:
    """Seconds until the output is expected: a documented heuristic, not a promise.

    ``base`` covers fetch, probe and encode of a typical short video on an idle cluster; each job
    already queued ahead adds ``per_queued`` (its own duration divided by the slots working the
    queue). Both are settings (estimate_base_seconds, estimate_per_queued_seconds).
    """
    return base + per_queued * ahead


@router.post(
    "/extract",
    status_code=202,
    response_model=Envelope[ExtractAccepted],
    openapi_extra=json_body(ExtractionJob),
    responses=errors(400, 401, 403, 409, 413, 429, 503),
    summary="Submit one extraction",
)
async def post_extract(
    request: Request, svc: Svc, who: Writer, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    idem = check_idempotency_key(idempotency_key)
    try:
        body = bodies.parse_json(await read_json_body(request), svc.settings.max_json_depth)
        job = bodies.parse_job(body)
        done = await accept(svc, who, [job], None, bodies.canonical_hash({"extract": body}), idem, "extract")
    except ApiError as e:
        svc.metrics.jobs_refused.labels(e.code, who.tenant).inc()
        raise
    if not done.replayed:
        svc.metrics.jobs_accepted.labels(who.tenant).inc()
    view = views.accepted_view(done.obj, svc.settings.public_prefix)
    s = svc.settings
    eta = estimated_time(done.ahead, s.estimate_base_seconds, s.estimate_per_queued_seconds)
    data = {**view["jobs"][0], "batchId": view["batchId"], "estimatedTime": eta}
    return ok(data, 202, "Job queued successfully", replay_header(done.replayed))
