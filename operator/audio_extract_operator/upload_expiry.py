"""Uploads in the store: which have expired, and removing them, partial uploads and stale owner
markers (docs/contract.md §7).

An upload expires ``retention.upload_seconds`` after the later of two times: its object's
last-modified time (when it was uploaded, moved on by the API each time a submission names it,
``Storage.touch``) and the end of the last job that used it; never while a job using it is
unfinished. Which jobs use which upload comes from the retention pass's listing of every batch,
so uploads expire only after a complete listing, like orphaned outputs (``outputs.sweep``). Only
uploads already past the retention by their last-modified time are candidates, and the pass
remembers the batches' use of those alone, not of every upload every retained batch names: memory
does not grow with the batches kept. Just before they are removed the uploads are listed again: a
submission that named one after the batches' listing began (its batch is not in the listing) has
made it fresh.

A partial upload goes once untouched for ``retention.partial_upload_grace_seconds`` (``Storage.
abort_stale_uploads``: a volume's ``.part`` files, an object store's incomplete multipart
uploads); an upload still arriving writes all the time. An owner marker
(``upload-owners/<tenant>/<id>``, the API's record of whose upload it is) goes when its upload is
gone and the marker is as old as that grace: an upload sent straight to an object store may
arrive after its marker was written. Such a direct upload's URL may be valid for longer than the
grace (the API's ``upload_url_seconds``), so its marker, which says until when
(``upload_owners.Declared``), also waits for the grace to pass after that time: a PUT begun just
before it ends a little later. Only a candidate marker (its upload absent, the marker older than
the grace) is read, so a pass reads few.

The store is the ``Storage`` of either backend, so the same code serves both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from audio_extract_common.batch_status import TERMINAL_STATES
from audio_extract_common.ids import UPLOAD_ID_RE
from audio_extract_common.objectstore import ObjectInfo, ObjectNotFound
from audio_extract_common.storage import Storage
from audio_extract_common.store import UPLOAD_OWNERS, UPLOADS, upload_key
from audio_extract_common.timefmt import parse
from audio_extract_common.upload_owners import Declared

IN_USE = math.inf


async def _uploads(storage: Storage) -> dict[str, float]:
    """Every upload's id and last-modified time (seconds); not the partial ones."""
    found = {}
    async for info in storage.list(f"{UPLOADS}/"):
        name = info.key.removeprefix(f"{UPLOADS}/")
        if UPLOAD_ID_RE.match(name):
            found[name] = info.last_modified.timestamp()
    return found


async def candidates(storage: Storage, now: float, retention: float) -> set[str]:
    """Ids of the uploads untouched for ``retention`` seconds: the only ones that may have expired."""
    return {name for name, mtime in (await _uploads(storage)).items() if now - mtime >= retention}


def _seconds(timestamp: object) -> float | None:
    try:
        return parse(timestamp).timestamp() if isinstance(timestamp, str) else None
    except ValueError:
        return None


class UploadUse:
    """When the last job using each candidate upload ended (``IN_USE``: one has not), from the
    batches of one listing."""

    def __init__(self, watched: set[str]) -> None:
        self.watched = watched
        self.last_end: dict[str, float] = {}

    def observe(self, batch: Mapping[str, Any]) -> None:
        if not self.watched:
            return
        status = batch.get("status") or {}
        entries = {e.get("index"): e for e in status.get("jobs") or []}
        for index, job in enumerate((batch.get("spec") or {}).get("jobs") or []):
            source = job.get("source") or {}
            upload = source.get("file") if source.get("type") == "upload" else None
            if upload not in self.watched:
                continue
            entry = entries.get(index) or {}
            if (entry.get("status") or "queued") not in TERMINAL_STATES:
                end = IN_USE
            else:  # a terminal entry without its time: the batch's, else when the batch was made
                end = (
                    _seconds(entry.get("completedAt"))
                    or _seconds(status.get("completedAt"))
                    or _seconds(batch["metadata"].get("creationTimestamp"))
                    or 0.0
                )
            self.last_end[upload] = max(self.last_end.get(upload, 0.0), end)


async def remove_expired(storage: Storage, use: UploadUse, now: float, retention: float) -> list[str]:
    """Remove the uploads ``use`` shows expired (see the module's docstring); returns their ids."""
    due = [u for u in sorted(use.watched) if now - use.last_end.get(u, 0.0) >= retention]
    if not due:
        return []
    fresh = await _uploads(storage)  # one listing, not one request per upload
    gone = []
    for upload in due:
        mtime = fresh.get(upload)
        if mtime is None or now - mtime < retention:
            continue  # removed meanwhile, or named by a submission since the candidates were chosen
        await storage.delete(upload_key(upload))
        gone.append(upload)
    return gone


async def remove_partials(storage: Storage, grace: float) -> int:
    """Remove partial writes untouched for ``grace`` seconds; returns how many."""
    return await storage.abort_stale_uploads(timedelta(seconds=grace))


async def _url_in_use(storage: Storage, marker: ObjectInfo, now: datetime, grace: float) -> bool:
    """Whether a direct upload's URL, as ``marker`` declares it, may still be bringing bytes."""
    if not marker.size:  # a streamed upload's marker is empty: nothing to read
        return False
    try:
        data = b"".join([chunk async for chunk in storage.stream(marker.key)])
    except ObjectNotFound:
        return False
    declared = Declared.decode(data)
    return declared is not None and (now - declared.url_expires_at).total_seconds() < grace


async def remove_stale_owners(storage: Storage, now: datetime, grace: float) -> int:
    """Remove the owner markers whose upload is gone, once ``grace`` seconds old and, for a direct
    upload, ``grace`` seconds past its URL's expiry; returns how many. (On a volume the tenants'
    directories stay: the API may be about to write a marker into one.)"""
    markers = [info async for info in storage.list(f"{UPLOAD_OWNERS}/")]
    if not markers:
        return 0
    present = set(await _uploads(storage))
    removed = 0
    for info in markers:
        parts = info.key.split("/")
        if len(parts) != 3 or parts[2] in present:
            continue
        if (now - info.last_modified).total_seconds() < grace:
            continue
        if await _url_in_use(storage, info, now, grace):
            continue
        await storage.delete(info.key)
        removed += 1
    return removed
