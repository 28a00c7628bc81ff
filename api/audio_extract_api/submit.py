"""Turning an accepted request into one ExtractionBatch, idempotently when asked to.

Every batch carries its creator's tenant in the ``audioextract.io/tenant`` label (docs/contract.md §7):
that label, not the key, decides who sees it.

Idempotency-Key: the batch key is an HMAC, under a server secret, of (tenant, Idempotency-Key), so
the object's name *is* the idempotency record and the API server's name uniqueness makes
concurrent duplicates safe: exactly one create succeeds, the other gets AlreadyExists and reads
the winner. Scoped per tenant (every key of a tenant shares its keys; two tenants never collide),
and keyed by the secret so that nobody who knows an Idempotency-Key can compute the batch id it
yields. The request body's canonical SHA-256 is stored in an annotation; the same key with
another body is 409 IDEMPOTENCY_CONFLICT. A key is remembered for as long as its batch exists
(at least the contract's 24 h: batches outlive their outputs' retention) and its secret stays.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from typing import Any

from audio_extract_common import ids
from audio_extract_common.batch_resource import manifest
from audio_extract_common.batch_spec import BatchSpec
from audio_extract_common.kube import AlreadyExists

from . import logs
from .auth import Principal
from .errors import IdempotencyConflict, InternalError, InvalidRequest, ServiceUnavailable
from .kube import Kube
from .queue_capacity import QueueView
from .views import KEY_ID_ANNOTATION, REQUEST_HASH_ANNOTATION, tenant_of

log = logging.getLogger(__name__)
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
"""Visible ASCII, 1-255 characters (draft-ietf-httpapi-idempotency-key-header)."""


@dataclass
class Submitted:
    obj: dict[str, Any]
    replayed: bool
    ahead: int
    """Jobs queued ahead of this batch when it was admitted (0 on replay)."""


def idempotent_batch_key(secret: bytes, tenant: str, idempotency_key: str) -> str:
    mac = hmac.new(secret, f"{tenant}\0{idempotency_key}".encode(), hashlib.sha256)
    return mac.hexdigest()[: ids.KEY_HEX]


def check_idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not IDEMPOTENCY_KEY_RE.match(value):
        raise InvalidRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
            [{"field": "Idempotency-Key", "message": "1-255 visible ASCII characters"}],
        )
    return value


def _replay(existing: dict[str, Any], who: Principal, body_hash: str) -> Submitted:
    stored = (existing["metadata"].get("annotations") or {}).get(REQUEST_HASH_ANNOTATION, "")
    # The tenant too: a batch of that name applied by hand for someone else is not ours to show.
    if tenant_of(existing) != who.tenant or not hmac.compare_digest(stored.encode(), body_hash.encode()):
        raise IdempotencyConflict()
    return Submitted(existing, replayed=True, ahead=0)


async def replayed(
    kube: Kube, who: Principal, body_hash: str, idempotency_key: str | None, secret: bytes
) -> Submitted | None:
    """The batch an earlier request with this Idempotency-Key created, or None. Asked before any
    other check of the request: those may answer otherwise by now (a full store or queue, a name
    that no longer resolves) while the batch exists and runs, and a retry must get that batch."""
    if not idempotency_key:
        return None
    key = idempotent_batch_key(secret, who.tenant, idempotency_key)
    existing = await kube.get(ids.batch_object_name(key))
    return None if existing is None else _replay(existing, who, body_hash)


async def submit(
    kube: Kube,
    queue: QueueView,
    who: Principal,
    spec: BatchSpec,
    body_hash: str,
    idempotency_key: str | None,
    secret: bytes,
) -> Submitted:
    """Create the batch for ``who``'s tenant, once ``replayed`` has found none; ``secret`` keys
    the Idempotency-Key's batch key."""
    key = idempotent_batch_key(secret, who.tenant, idempotency_key) if idempotency_key else ids.new_key()
    logs.batch_id.set(ids.batch_id(key))  # the rest of the request's lines are about this batch
    name = ids.batch_object_name(key)
    body = manifest(
        name,
        spec,
        labels={ids.KEY_LABEL: key, ids.TENANT_LABEL: who.tenant},
        annotations={KEY_ID_ANNOTATION: who.key_id, REQUEST_HASH_ANNOTATION: body_hash},
    )
    try:
        async with queue.admit(name, len(spec.jobs)) as ahead:
            created = await kube.create(body)
    except AlreadyExists:
        if not idempotency_key:
            raise InternalError() from None  # 56 random bits collided: astronomically unlikely
        existing = await kube.get(name)
        if existing is None:  # created and deleted in between
            raise ServiceUnavailable(headers={"Retry-After": "1"}) from None
        return _replay(existing, who, body_hash)
    log.info(
        "batch %s created: %d job(s), tenant %s, key %s%s",
        ids.batch_id(key),
        len(spec.jobs),
        who.tenant,
        who.key_id,
        " (idempotent)" if idempotency_key else "",
    )
    return Submitted(created, replayed=False, ahead=ahead)
