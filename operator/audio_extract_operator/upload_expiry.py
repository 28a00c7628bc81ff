"""Uploads in the store: which have expired, and removing them, partial uploads and stale owner
markers (docs/contract.md §7).

An upload expires ``upload_retention_seconds`` after the later of two times: its file's mtime
(when it was uploaded, moved on by the API each time a submission names it) and the end of the
last job that used it; never while a job using it is unfinished. Which jobs use which upload comes
from the retention pass's listing of every batch, so uploads expire only after a complete
listing, like orphaned outputs (``outputs.sweep``). Only uploads already past the retention by
their mtime are candidates, and the pass remembers the batches' use of those alone, not of every
upload every retained batch names: memory does not grow with the batches kept. Just before one is
removed its mtime is read again: a submission that named it after the listing began (its batch is
not in the listing) has made it fresh.

A partial upload (``.<id>.<random>.part``: the API process was killed mid-upload, or its pod
lost) goes once untouched for ``partial_upload_grace_seconds``; an upload still arriving writes
its file all the time. An owner marker (``upload-owners/<tenant>/<id>``, the API's record of whose
upload it is) goes when its upload is gone: the API writes it only once the upload is in place.

File system calls here block (network storage): callers run them in a thread.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from audio_extract_common.ids import UPLOAD_ID_RE
from audio_extract_common.resource import TERMINAL_STATES
from audio_extract_common.store import UPLOAD_OWNERS, UPLOADS, is_partial
from audio_extract_common.timefmt import parse

IN_USE = math.inf


def _entries(directory: Path) -> Iterator[tuple[str, float]]:
    """``(name, mtime)`` of the files in ``directory`` (none if it does not exist)."""
    try:
        with os.scandir(directory) as listing:
            for e in listing:
                with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                    if e.is_file(follow_symlinks=False):
                        yield e.name, e.stat(follow_symlinks=False).st_mtime
    except FileNotFoundError:
        return


def candidates(root: Path, now: float, retention: float) -> set[str]:
    """Ids of the uploads untouched for ``retention`` seconds: the only ones that may have expired."""
    return {
        name
        for name, mtime in _entries(root / UPLOADS)
        if UPLOAD_ID_RE.match(name) and now - mtime >= retention
    }


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


def remove_expired(root: Path, use: UploadUse, now: float, retention: float) -> list[str]:
    """Remove the uploads ``use`` shows expired (see the module's docstring); returns their ids."""
    gone = []
    for upload in sorted(use.watched):
        if now - use.last_end.get(upload, 0.0) < retention:
            continue
        path = root / UPLOADS / upload
        try:
            if now - path.stat().st_mtime < retention:
                continue  # named by a submission since the candidates were chosen
            path.unlink()
        except FileNotFoundError:
            continue
        gone.append(upload)
    return gone


def remove_partials(root: Path, now: float, grace: float) -> list[str]:
    """Remove partial uploads untouched for ``grace`` seconds; returns their names."""
    gone = []
    for name, mtime in _entries(root / UPLOADS):
        if is_partial(name) and now - mtime >= grace:
            with contextlib.suppress(FileNotFoundError):
                (root / UPLOADS / name).unlink()
                gone.append(name)
    return gone


def remove_stale_owners(root: Path) -> int:
    """Remove the owner markers whose upload is gone; returns how many. The tenants' directories
    stay: the API may be about to write a marker into one."""
    removed = 0
    try:
        tenants = [d for d in os.scandir(root / UPLOAD_OWNERS) if d.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return 0
    for tenant in tenants:
        for name, _ in _entries(Path(tenant.path)):
            if not (root / UPLOADS / name).exists():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(tenant.path, name))
                    removed += 1
    return removed
