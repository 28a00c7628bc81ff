"""POST /v1/batch (the core), GET /v1/batch/{batchId}."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse

from audio_extract_common.api_models import BatchAccepted, BatchView, Envelope
from audio_extract_common.batch_spec import BatchSpec, ExtractionJob

from .. import bodies, guard, views
from ..auth import Principal
from ..deps import BATCH_ID_PATTERN, Reader, Services, Svc, Writer, find_batch, read_json_body
from ..envelope import ok
from ..errors import ApiError
from ..openapi import errors, json_body
from ..submit import Submitted, check_idempotency_key, replayed, submit

router = APIRouter(tags=["batches"])

BatchIdParam = Annotated[
    str, Path(json_schema_extra={"pattern": BATCH_ID_PATTERN}, description="`batch_` + 16 lowercase hex.")
]


def replay_header(replayed: bool) -> dict[str, str] | None:
    return {"Idempotent-Replayed": "true"} if replayed else None


async def accept(
    svc: Services,
    who: Principal,
    jobs: list[ExtractionJob],
    webhook: str | None,
    body_hash: str,
    idem: str | None,
    operation: Literal["batch", "extract"],
) -> Submitted:
    """The batch an earlier request with the Idempotency-Key ``idem`` created, else a new one once
    the checks pass. The replay comes first: those checks may refuse by now what was accepted
    then (``submit.replayed``)."""
    done = await replayed(svc.kube, who, body_hash, idem, svc.idempotency_secret)
    if done is not None:
        return done
    svc.queue.shed(len(jobs))
    prefix = "jobs" if operation == "batch" else ""  # /extract's body is the job itself
    await guard.check_jobs(jobs, webhook, svc.hosts, svc.store, who, prefix)
    await svc.space.check(operation)
    spec = BatchSpec(jobs=jobs, webhook=webhook)
    return await submit(svc.kube, svc.queue, who, spec, body_hash, idem, svc.idempotency_secret)


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="(extension) Same key and body within 24 h → the same batch; another body → 409.",
    ),
]


@router.post(
    "/batch",
    status_code=202,
    response_model=Envelope[BatchAccepted],
    openapi_extra=json_body(bodies.BatchRequest),
    responses=errors(400, 401, 403, 409, 413, 429, 503),
    summary="Submit 1 to 10 extractions as one batch",
)
async def post_batch(
    request: Request, svc: Svc, who: Writer, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    idem = check_idempotency_key(idempotency_key)
    try:
        body = bodies.parse_json(await read_json_body(request), svc.settings.max_json_depth)
        req = bodies.parse_batch(body)
        done = await accept(svc, who, req.jobs, req.webhook, bodies.canonical_hash(body), idem, "batch")
    except ApiError as e:
        svc.metrics.jobs_refused.labels(e.code, who.tenant).inc()
        raise
    if not done.replayed:
        svc.metrics.jobs_accepted.labels(who.tenant).inc(len(req.jobs))
    data = views.accepted_view(done.obj, svc.settings.public_prefix)
    return ok(data, 202, "Batch jobs queued successfully", replay_header(done.replayed))


@router.get(
    "/batch/{batchId}",
    response_model=Envelope[BatchView],
    responses=errors(400, 401, 403, 404, 429, 503),
    summary="(extension) A batch with each job's status and counts",
)
async def get_batch(svc: Svc, who: Reader, batchId: BatchIdParam) -> JSONResponse:
    obj = await find_batch(svc.kube, batchId, who)
    return ok(views.batch_view(obj, svc.settings.public_prefix, links=await svc.links.of(obj)))
