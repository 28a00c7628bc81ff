"""Outputs in the store and the batches they belong to: which to remove, and removing them.

An output lives under ``<jobId>/`` (``store.output_key``) and a job id names its batch's key
(``ids.parse_job_id``), so the store alone tells which batch an output belongs to. Outputs go
when retention deletes their batch, when a batch is deleted by hand (its DELETED event), and,
for a deletion the operator never saw (it was down, or the event was lost), when a retention pass
finds an output whose batch no longer exists (``orphaned``).

Why not a finalizer on every batch, so its outputs go before it does: a batch could then not be
deleted while the operator is away, and after ``helm uninstall`` (which keeps the batches and the
store) every ``kubectl delete`` of a batch, and of its namespace, would hang for ever.

File system calls here block (an ``rmtree`` of a large output, a scan of a big store on network
storage): callers run them in a thread.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from audio_extract_common import ids
from audio_extract_common.store import FilesystemStore


def job_ids(batch: Mapping[str, Any]) -> list[str]:
    """The job ids of a batch, hence its output prefixes."""
    meta = batch["metadata"]
    key = ids.batch_key(meta["name"], meta["uid"])
    count = min(len((batch.get("spec") or {}).get("jobs") or []), ids.MAX_JOBS)
    return [ids.job_id(key, i) for i in range(count)]


def orphaned(
    entries: Iterable[tuple[str, float]], live_keys: set[str], now: float, grace: float
) -> list[str]:
    """Names of store entries ``(name, mtime)`` that are outputs of a batch not in ``live_keys``
    and untouched for ``grace`` seconds (a batch created after the listing that ``live_keys``
    comes from has outputs younger than that). Anything not named like an output (uploads, a
    stranger's files) is never a candidate."""
    out = []
    for name, mtime in entries:
        parsed = ids.parse_job_id(name)
        if parsed is not None and parsed[0] not in live_keys and now - mtime >= grace:
            out.append(name)
    return out


def remove(root: Path, prefixes: Iterable[str]) -> None:
    store = FilesystemStore(root)
    for prefix in prefixes:
        store.delete_prefix(prefix)


def sweep(root: Path, live_keys: set[str], now: float, grace: float) -> list[str]:
    """Remove the outputs ``orphaned`` finds under ``root``; returns their names."""
    entries = []
    try:
        with os.scandir(root) as listing:
            for e in listing:
                with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                    entries.append((e.name, e.stat(follow_symlinks=False).st_mtime))
    except FileNotFoundError:
        return []
    gone = orphaned(entries, live_keys, now, grace)
    remove(root, gone)
    return gone
