"""Probes and metrics: no API key (docs/contract.md §1)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from audio_extract_common.api_models import Envelope, Health

from ..deps import Svc
from ..envelope import ok
from ..openapi import errors

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Envelope[Health], summary="Liveness: the process answers")
async def healthz() -> JSONResponse:
    return ok({"status": "ok"})


@router.get(
    "/readyz",
    response_model=Envelope[Health],
    responses=errors(503),
    summary="Readiness: the Kubernetes API answers",
)
async def readyz(svc: Svc) -> JSONResponse:
    await svc.kube.ping()
    return ok({"status": "ready"})


@router.get("/metrics", include_in_schema=False)
async def metrics(svc: Svc) -> Response:
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
