"""Uploads per tenant: whose each upload is, and the quota a tenant's uploads count against
(docs/contract.md §7: 413 QUOTA_EXCEEDED).

An upload belongs to the tenant of the key that sent it, recorded as an empty marker file
``upload-owners/<tenant>/<uploadId>`` written once the upload is in place (``store`` holds the
layout). A tenant's usage is then one listing of its own directory: a marker counts while its
upload exists, so an upload the operator expired stops counting at once, and the operator removes
the marker too.

The quota is exact within one process: the usage is read from the store when the first of a
tenant's uploads in this process begins, and from then on every byte received and every upload
finished is counted in memory until the last one ends. Several replicas each count their own
uploads in flight, so together they can go over by what the others are receiving at that moment
(each upload is still capped at ``max_upload_bytes``); what is stored is always counted.

Store calls block (network storage): they run in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import anyio.to_thread

from audio_extract_common.store import UPLOAD_OWNERS, FilesystemStore, upload_key, upload_owner_key

from .auth import Principal
from .errors import QuotaExceeded


@dataclass
class Usage:
    count: int = 0
    bytes: int = 0


def stored_usage(store: FilesystemStore, tenant: str) -> Usage:
    """The tenant's uploads in the store (blocking)."""
    usage = Usage()
    owners = store.root / UPLOAD_OWNERS / tenant
    try:
        names = os.listdir(owners)
    except FileNotFoundError:
        return usage
    for name in names:
        size = store.size(upload_key(name))
        if size is not None:
            usage.count += 1
            usage.bytes += size
    return usage


def record_owner(store: FilesystemStore, tenant: str, upload_id: str) -> None:
    """Mark ``upload_id`` as ``tenant``'s (blocking)."""
    path = store.root / upload_owner_key(tenant, upload_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def claim(store: FilesystemStore, who: Principal, upload_id: str) -> bool:
    """Whether ``who`` may use the upload as a source (its tenant's, or any for an admin); a usable
    upload is marked as used now, which its expiry counts from (blocking)."""
    owned = who.admin or (store.root / upload_owner_key(who.tenant, upload_id)).exists()
    return owned and store.touch(upload_key(upload_id)) is not None


@dataclass
class _InFlight:
    """One tenant's usage while this process receives uploads of it."""

    stored: Usage
    """In the store when the first began, plus the ones finished since."""
    uploads: int = 0
    received: int = 0


class UploadQuota:
    def __init__(self, store: FilesystemStore, max_bytes: int, max_count: int) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.max_count = max_count
        self._tenants: dict[str, _InFlight] = {}

    def _refuse(self, what: str) -> QuotaExceeded:
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
            stored = await anyio.to_thread.run_sync(stored_usage, self.store, tenant)
            self._tenants.setdefault(tenant, _InFlight(stored))  # another request may have won
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
