"""``create_app()``: the FastAPI application, built from one Settings object.

Run: ``uvicorn --factory audio_extract_api.app:create_app`` (or ``python -m audio_extract_api``).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from audio_extract_common.api_models import DirectUploadRequest
from audio_extract_common.batch_spec import ExtractionJob
from audio_extract_common.storage import Storage, open_storage

from . import errors, openapi
from .auth import KeyStore, RateLimiter
from .bodies import BatchRequest
from .deps import Services
from .downloads import OutputLinks
from .guard import HostChecks
from .kube import Kube
from .metrics import Metrics
from .middleware import Edge
from .queue_capacity import QueueView
from .routes import health, public_router
from .settings import Settings
from .storespace import StoreSpace
from .upload_quota import UploadQuota

log = logging.getLogger(__name__)


def idempotency_secret(settings: Settings) -> bytes:
    secret = settings.idempotency_secret.get_secret_value().encode()
    if not secret:
        log.warning(
            "AUDIO_EXTRACT_API_IDEMPOTENCY_SECRET is empty: a random one is used, so an "
            "Idempotency-Key is honoured only by this process and until it restarts"
        )
        secret = secrets.token_bytes(32)
    return secret


def build_services(settings: Settings, store: Storage, metrics: Metrics) -> Services:
    kube = Kube(settings)
    return Services(
        settings=settings,
        keys=KeyStore(settings.api_keys_path, settings.api_keys_reload_seconds),
        limiter=RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst),
        kube=kube,
        queue=QueueView(
            kube, settings.queue_capacity, settings.queue_retry_after_seconds, settings.kube_timeout_seconds
        ),
        store=store,
        space=StoreSpace(
            store, settings.store_min_free_bytes, settings.store_full_retry_after_seconds, metrics
        ),
        quota=UploadQuota(store, settings.upload_quota_bytes, settings.upload_quota_count),
        links=OutputLinks(store, settings.download_url_seconds),
        hosts=HostChecks.from_settings(settings),
        idempotency_secret=idempotency_secret(settings),
        metrics=metrics,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The store is opened once for the process (an object store's client holds a connection
        # pool). The queue view starts with the first submission (which waits for its first list,
        # one round trip); everything holding sockets is closed on the way out.
        async with open_storage(settings.store_type, root=settings.store_root, s3=settings.s3) as store:
            svc = build_services(settings, store, metrics)
            app.state.services = svc
            svc.space.start()
            try:
                yield
            finally:
                await svc.space.stop()
                await svc.queue.stop()
                await svc.kube.close()

    app = FastAPI(
        title="audio-extract",
        version="1.0.0",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
        generate_unique_id_function=openapi.operation_id,
        # A path with a trailing slash is another path: 404 NOT_FOUND in the envelope, not a bare
        # 307 to a Location built from the request's Host header.
        redirect_slashes=False,
    )
    errors.install(app)
    app.include_router(health.router, responses=openapi.errors(500))
    app.include_router(public_router(), prefix="/v1", responses=openapi.errors(500))
    app.include_router(public_router(), prefix="/audio-extract/v1", include_in_schema=False)
    openapi.install(app, [BatchRequest, ExtractionJob, DirectUploadRequest])
    app.add_middleware(Edge, settings=settings, metrics=metrics)
    return app
