"""Outputs in the store and the batches they belong to: which to remove, and removing them.

An output lives under ``<jobId>/`` (``store.output_key``) and a job id names its batch's key
(``ids.parse_job_id``), so the store alone tells which batch an output belongs to. Outputs go
when retention deletes their batch, when a batch is deleted by hand (its DELETED event), and,
for a deletion the operator never saw (it was down, or the event was lost), when a retention pass
finds an output whose batch no longer exists (``orphaned``).

Why not a finalizer on every batch, so its outputs go before it does: a batch could then not be
deleted while the operator is away, and after ``helm uninstall`` (which keeps the batches and the
store) every ``kubectl delete`` of a batch, and of its namespace, would hang for ever.

The store is the ``Storage`` of either backend (a volume's calls run in threads, an object store's
are async requests), so the same code serves both.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from audio_extract_common import ids
from audio_extract_common.storage import Storage

JOB_PREFIX = "job_"
"""How every output's top-level name (its job id) begins: a listing under it skips the uploads."""
REMOVE_CONCURRENCY = 8
"""Prefixes removed at once: a batch's ten outputs in one round trip's time, not ten."""


def job_ids(batch: Mapping[str, Any]) -> list[str]:
    """The job ids of a batch, hence its output prefixes."""
    key = ids.derived_batch_key(batch)
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


async def remove(storage: Storage, prefixes: Iterable[str]) -> None:
    """Remove every object under each ``<jobId>`` prefix (none there is fine)."""
    limit = asyncio.Semaphore(REMOVE_CONCURRENCY)

    async def one(prefix: str) -> None:
        async with limit:
            await storage.delete_prefix(prefix)

    await asyncio.gather(*(one(p) for p in prefixes))


async def entries(storage: Storage) -> dict[str, float]:
    """The top-level names that may be outputs (``job_…``), each with the time its newest object
    was written: what ``orphaned`` judges."""
    newest: dict[str, float] = {}
    async for info in storage.list(JOB_PREFIX):
        name = info.key.split("/", 1)[0]
        newest[name] = max(newest.get(name, 0.0), info.last_modified.timestamp())
    root = storage.local_path("")
    if root is not None:
        # a volume also holds directories without a file: the kubelet makes a job's (its mount)
        # when the pod starts, and a job that failed writes nothing into it
        for name, mtime in await asyncio.to_thread(_directories, root):
            newest[name] = max(newest.get(name, 0.0), mtime)
    return newest


def _directories(root: Path) -> list[tuple[str, float]]:
    found = []
    try:
        with os.scandir(root) as listing:
            for e in listing:
                with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                    if e.name.startswith(JOB_PREFIX) and e.is_dir(follow_symlinks=False):
                        found.append((e.name, e.stat(follow_symlinks=False).st_mtime))
    except FileNotFoundError:
        pass
    return found


async def sweep(storage: Storage, live_keys: set[str], now: datetime, grace: float) -> list[str]:
    """Remove the outputs ``orphaned`` finds in the store; returns their names."""
    gone = orphaned((await entries(storage)).items(), live_keys, now.timestamp(), grace)
    await remove(storage, gone)
    return gone
