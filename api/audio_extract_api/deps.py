"""What handlers get injected: the process's services, the caller, and id lookups.

Every dependency here is ``async def``: FastAPI runs a plain ``def`` dependency in anyio's shared
worker-thread pool, so /readyz and authentication waited for a free thread behind whatever filled
the pool (blocking DNS lookups could take it whole). None of them blocks: authentication
hashes and compares in memory, and re-reads the key file (a few hundred bytes on a mounted
Secret, a memory-backed volume) at most once per ``api_keys_reload_seconds``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from audio_extract_common import ids
from audio_extract_common.storage import Storage

from . import logs
from .auth import KeyStore, Principal, RateLimiter
from .downloads import OutputLinks
from .errors import InvalidJobId, InvalidRequest, JobNotFound, PayloadTooLarge
from .guard import HostChecks
from .kube import Kube
from .logs import tenant
from .metrics import Metrics
from .queue_capacity import QueueView
from .settings import Settings
from .storespace import StoreSpace
from .upload_quota import UploadQuota
from .views import job_count, job_id_of, tenant_of


@dataclass
class Services:
    """Everything one API process holds, built once when the app starts (``app.build_services``)."""

    settings: Settings
    keys: KeyStore
    limiter: RateLimiter
    kube: Kube
    queue: QueueView
    store: Storage
    space: StoreSpace
    quota: UploadQuota
    links: OutputLinks
    hosts: HostChecks
    idempotency_secret: bytes
    metrics: Metrics = field(default_factory=Metrics)


async def services(request: Request) -> Services:
    return request.app.state.services


Svc = Annotated[Services, Depends(services)]

_api_key = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key; the service stores only its SHA-256 digest."
)


async def caller(svc: Svc, key: Annotated[str | None, Depends(_api_key)]) -> Principal:
    who = svc.keys.authenticate(key)
    tenant.set(who.tenant)
    svc.limiter.check(who.key_id)
    return who


async def writer(who: Annotated[Principal, Depends(caller)]) -> Principal:
    who.require("write")
    return who


async def reader(who: Annotated[Principal, Depends(caller)]) -> Principal:
    who.require("read")
    return who


Reader = Annotated[Principal, Depends(reader)]
Writer = Annotated[Principal, Depends(writer)]

JOB_ID_PATTERN = ids.JOB_ID_RE.pattern
BATCH_ID_PATTERN = ids.BATCH_ID_RE.pattern


async def find_job(kube: Kube, job_id: str, who: Principal) -> tuple[dict[str, Any], int]:
    """The batch holding ``job_id`` and the job's index, without listing batches. Another tenant's
    job is not found: the same error, raised the same way, as for an id no batch holds."""
    if not ids.JOB_ID_RE.match(job_id):
        raise InvalidJobId(f"Malformed job id {job_id[:64]!r}: expected job_ + 16 lowercase hex")
    logs.about_job(job_id)  # well formed: the request's log lines name it
    parsed = ids.parse_job_id(job_id)
    if parsed is None:
        raise JobNotFound()
    key, index = parsed
    obj = await _batch_seen_by(kube, key, who)
    if obj is None or index >= job_count(obj) or job_id_of(obj, index) != job_id:
        raise JobNotFound()
    return obj, index


async def find_batch(kube: Kube, batch_id: str, who: Principal) -> dict[str, Any]:
    """The batch ``batch_id``; another tenant's is not found (see ``find_job``)."""
    if not ids.BATCH_ID_RE.match(batch_id):
        raise InvalidJobId(f"Malformed batch id {batch_id[:64]!r}: expected batch_ + 16 lowercase hex")
    logs.batch_id.set(batch_id)  # well formed: the request's log lines name it
    key = ids.parse_batch_id(batch_id)
    if key is None:
        raise JobNotFound("No such batch")
    obj = await _batch_seen_by(kube, key, who)
    if obj is None:
        raise JobNotFound("No such batch")
    return obj


async def _batch_seen_by(kube: Kube, key: str, who: Principal) -> dict[str, Any] | None:
    """The batch of ``key`` (by its name, else one applied by hand carrying the key) if ``who``
    sees it. Another tenant's costs the same two lookups as a missing one: the time the answer
    took, which ``Server-Timing`` reports, must not tell them apart either."""
    obj = await kube.get(ids.batch_object_name(key))
    if obj is None or not who.sees(tenant_of(obj)):
        obj = await kube.find_by_key(key)
    return obj if obj is not None and who.sees(tenant_of(obj)) else None


def is_json(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


async def read_json_body(request: Request, limit: int | None = None) -> bytes:
    """The body of a JSON request; past ``limit`` bytes PAYLOAD_TOO_LARGE (the edge caps every body
    at its route's limit already; a route taking files too caps its JSON form lower)."""
    ctype = request.headers.get("content-type", "")
    media = ctype.split(";", 1)[0].strip().lower()
    if media and not is_json(request):
        raise InvalidRequest(f"Content-Type must be application/json, not {media[:64]!r}")
    if limit is None:
        return await request.body()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"Request body is over the limit of {limit} bytes")
    return bytes(body)
