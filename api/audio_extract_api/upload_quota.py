"""Uploads per tenant: whose each upload is, and the quota a tenant's uploads count against
(docs/contract.md §7: 413 QUOTA_EXCEEDED).

An upload belongs to the tenant of the key that sent it, recorded as a marker object
``upload-owners/<tenant>/<uploadId>`` (``store`` holds the layout). A streamed upload's marker is
empty and written once the upload is in place. A direct upload's marker is written before its URL
is handed out and holds what was declared (size, and until when the URL may be used): its bytes
reach the store without the API. A tenant's usage is then one listing of its own markers: a marker
counts while its upload exists (its stored size), or, for a direct upload whose bytes have not
arrived, its declared size until its URL expires. An upload the operator expired stops counting at
once, and the operator removes the marker too.

The quota is exact within one process: the usage is read from the store (one reading at a time
per tenant) when the first of a tenant's uploads in this process begins, and from then on every
byte received and every upload finished is counted in memory until the last one ends. Several
replicas each count their own uploads in flight, so together they can go over by what the others
are receiving at that moment (each upload is still capped at ``max_upload_bytes``); what is
stored is always counted.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import anyio

from audio_extract_common import timefmt
from audio_extract_common.keyed_locks import KeyedLocks
from audio_extract_common.objectstore import ObjectInfo, ObjectNotFound
from audio_extract_common.storage import Storage
from audio_extract_common.store import UPLOAD_OWNERS, upload_key, upload_owner_key
from audio_extract_common.upload_owners import Declared

from .auth import Principal
from .errors import ApiError, QuotaExceeded

LOOKUPS_AT_ONCE = 16
"""Store requests one usage reading makes at once (one per marker): 100 uploads on an object store
are then a few round trips deep, not a hundred."""


@dataclass
class Usage:
    count: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class Marker:
    declared: Declared | None  # None: a streamed upload


async def _read(store: Storage, key: str) -> bytes | None:
    try:
        return b"".join([chunk async for chunk in store.stream(key)])
    except ObjectNotFound:
        return None


async def read_marker(store: Storage, tenant: str, upload_id: str) -> Marker | None:
    """``tenant``'s marker of ``upload_id``; None when the upload is not the tenant's."""
    data = await _read(store, upload_owner_key(tenant, upload_id))
    return None if data is None else Marker(Declared.decode(data) if data else None)


async def stored_usage(store: Storage, tenant: str) -> Usage:
    """The tenant's uploads in the store, and its direct uploads still arriving."""
    usage = Usage()
    now = timefmt.now()
    markers = [marker async for marker in store.list(f"{UPLOAD_OWNERS}/{tenant}/")]
    limiter = anyio.CapacityLimiter(LOOKUPS_AT_ONCE)
    failed: list[Exception] = []

    async def count(marker: ObjectInfo) -> None:
        upload_id = marker.key.rpartition("/")[2]
        try:
            async with limiter:
                size = await store.size(upload_key(upload_id))
                if size is None and marker.size:  # a direct upload: its bytes may be on their way
                    declared = Declared.decode(await _read(store, marker.key) or b"")
                    if declared is not None and declared.arriving(now):
                        size = declared.size
        except Exception as e:  # raised below as itself, not in a task group's ExceptionGroup
            failed.append(e)
            return
        if size is not None:
            usage.count += 1
            usage.bytes += size

    async with anyio.create_task_group() as tg:
        for marker in markers:
            tg.start_soon(count, marker)
    if failed:
        raise failed[0]
    return usage


async def record_owner(store: Storage, tenant: str, upload_id: str, declared: Declared | None = None) -> None:
    """Mark ``upload_id`` as ``tenant``'s (with what a direct upload declared)."""
    await store.put_bytes(upload_owner_key(tenant, upload_id), declared.encode() if declared else b"")


async def claim(store: Storage, who: Principal, upload_id: str) -> str | None:
    """Why ``who`` may not use the upload as a source, or None when it may (its tenant's, or any for
    an admin, with its bytes in place). A usable upload is marked as used now, which its expiry
    counts from."""
    unknown = f"no upload {upload_id!r}"
    marker = await read_marker(store, who.tenant, upload_id)
    if marker is None and not who.admin:
        return unknown
    declared = marker.declared if marker else None
    if declared is not None:
        size = await store.size(upload_key(upload_id))
        if size is None:
            if declared.arriving(timefmt.now()):
                return f"upload not complete: {upload_id!r} has no bytes yet"
            return unknown
        if size > declared.size:
            return f"upload {upload_id!r} holds {size} bytes, more than the {declared.size} declared"
    if await store.touch(upload_key(upload_id)) is None:
        return unknown
    return None


@dataclass
class _InFlight:
    """One tenant's usage while this process receives uploads of it."""

    stored: Usage
    """In the store when the first began, plus the ones finished since."""
    uploads: int = 0
    received: int = 0


class UploadQuota:
    def __init__(self, store: Storage, max_bytes: int, max_count: int) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.max_count = max_count
        self._tenants: dict[str, _InFlight] = {}
        self._readings: KeyedLocks[str] = KeyedLocks()
        """Per tenant whose usage is being read: its readers take turns."""

    def _refuse(self, what: str) -> ApiError:
        return QuotaExceeded(
            f"The tenant's upload quota ({self.max_count or 'any number of'} uploads, "
            f"{self.max_bytes or 'any number of'} bytes) would be exceeded",
            what,
        )

    @contextlib.asynccontextmanager
    async def reserve(self, tenant: str, declared: int | None) -> AsyncIterator[Callable[[int], None]]:
        """Room for one more upload of ``tenant``, or QUOTA_EXCEEDED. An upload of ``declared``
        bytes (the request says how many) has them reserved at once, so that of two that cannot
        both fit, the first wins whole. Yields ``take(n)``, to call before writing each ``n``
        bytes: it refuses bytes past the quota. The upload counts as stored when the block ends
        without error."""
        if tenant not in self._tenants:
            async with self._readings.hold(tenant):
                # A reading begun before another upload of the tenant ended would miss that one.
                if tenant not in self._tenants:
                    self._tenants[tenant] = _InFlight(await stored_usage(self.store, tenant))
        t = self._tenants[tenant]
        reserved = declared or 0
        refusal = None
        if self.max_count and t.stored.count + t.uploads + 1 > self.max_count:
            refusal = self._refuse(f"{t.stored.count + t.uploads} uploads stored or arriving")
        elif self.max_bytes and t.stored.bytes + t.received + reserved > self.max_bytes:
            refusal = self._refuse(
                f"{t.stored.bytes + t.received} bytes stored or arriving, {reserved} more sent"
            )
        if refusal is not None:
            if not t.uploads:
                del self._tenants[tenant]
            raise refusal
        t.uploads += 1
        t.received += reserved
        written = 0

        def take(n: int) -> None:
            nonlocal written
            beyond = max(0, written + n - reserved) - max(0, written - reserved)
            if beyond and self.max_bytes and t.stored.bytes + t.received + beyond > self.max_bytes:
                raise self._refuse(f"over {self.max_bytes} bytes with this upload")
            t.received += beyond
            written += n

        try:
            yield take
            t.stored.count += 1
            t.stored.bytes += written
        finally:
            t.uploads -= 1
            t.received -= max(reserved, written)
            if not t.uploads:
                del self._tenants[tenant]  # the next upload reads the store again
