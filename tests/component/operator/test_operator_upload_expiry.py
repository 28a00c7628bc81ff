"""Uploads expire (docs/contract.md §7): a retention pass removes an upload once
``retention.upload_seconds`` have passed since it was uploaded (or last named by a submission)
and since the last job using it ended, never while a job using it is unfinished; partial uploads
a killed API process left behind go after ``retention.partial_upload_grace_seconds``; owner markers go with
their uploads. A real temporary-directory store, the batches in the in-memory API server; the
tests at the end run on both stores, a temporary directory and a real S3 server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from operator_fakeapi import NS, FakeApi
from operator_store import StoreUnderTest, next_second

from audio_extract_common.kube import KubeError
from audio_extract_common.timefmt import iso, now
from audio_extract_operator import loops
from audio_extract_operator.state import OperatorState
from support.operator_settings import operator_settings

HOUR = 3600.0


def upload_id(n: int) -> str:
    return f"upl_{n:016x}"


def put(root: Path, rel: str, age: float) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"video")
    when = time.time() - age
    os.utime(path, (when, when))
    return path


def upload(root: Path, n: int, age: float, tenant: str = "acme") -> None:
    put(root, f"uploads/{upload_id(n)}", age)
    put(root, f"upload-owners/{tenant}/{upload_id(n)}", age)


def using(api: FakeApi, name: str, n: int, state: str | None = None, ended_ago: float = 0.0) -> None:
    """A batch whose one job reads upload ``n``: unfinished (no status yet, or ``state``), or ended
    ``ended_ago`` seconds ago."""
    api.add_batch(name)
    job = {"source": {"type": "upload", "file": upload_id(n)}, "output": {"format": "wav"}}
    patch: dict = {"spec": {"jobs": [job]}}
    if state is not None:
        ended = iso(now() - timedelta(seconds=ended_ago))
        entry = {
            "index": 0,
            "jobId": "job_0123456789abcd01",
            "jobName": "job-0123456789abcd01",
            "status": state,
            "createdAt": ended,
        }
        if state in ("completed", "failed", "cancelled"):
            entry["completedAt"] = ended
        patch["status"] = {"jobs": [entry]}
    api.edit("extractionbatches", NS, name, patch)


def remaining(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def operator_state(api: FakeApi, root: Path, **settings: object) -> OperatorState:
    values = {
        "progress__port": 0,
        "store__root": root,
        "retention__upload_seconds": 24 * HOUR,
        "retention__partial_upload_grace_seconds": HOUR,
        **settings,
    }
    return OperatorState(operator_settings(**values), api)  # type: ignore[arg-type]


async def retention(state: OperatorState) -> None:
    await loops.retention_pass(state.kube, state.settings, state.registry, state.reconciler)


async def test_uploads_expire_after_their_upload_and_their_last_job(tmp_path: Path) -> None:
    api = FakeApi()
    upload(tmp_path, 1, age=25 * HOUR)  # never used: expired
    upload(tmp_path, 2, age=1 * HOUR)  # recent: kept
    upload(tmp_path, 3, age=25 * HOUR)
    using(api, "queued", 3)  # its job has not even started: kept
    upload(tmp_path, 4, age=25 * HOUR)
    using(api, "running", 4, state="processing", ended_ago=30 * HOUR)  # running for long: kept
    upload(tmp_path, 5, age=49 * HOUR)
    using(api, "done-lately", 5, state="completed", ended_ago=1 * HOUR)  # its job ended lately: kept
    upload(tmp_path, 6, age=49 * HOUR)
    using(api, "done-long-ago", 6, state="failed", ended_ago=25 * HOUR)  # everything past: expired
    upload(tmp_path, 7, age=49 * HOUR)
    using(api, "one-done", 7, state="cancelled", ended_ago=25 * HOUR)
    using(api, "one-queued", 7, state="queued")  # another batch still needs it: kept
    put(tmp_path, "upload-owners/acme/" + upload_id(8), age=HOUR)  # its upload is gone: removed
    put(tmp_path, "uploads/README", age=99 * HOUR)  # not an upload: not ours to remove
    await retention(operator_state(api, tmp_path))
    kept = {f"{d}/{upload_id(n)}" for n in (2, 3, 4, 5, 7) for d in ("uploads", "upload-owners/acme")}
    assert remaining(tmp_path) == kept | {"uploads/README"}


async def test_partial_uploads_are_removed_after_the_grace(tmp_path: Path) -> None:
    """What an API process killed mid-upload leaves: its temporary file, never renamed in."""
    stale = put(tmp_path, f"uploads/.{upload_id(1)}.k3j9x2.part", age=2 * HOUR)
    writing = put(tmp_path, f"uploads/.{upload_id(2)}.a8d0q1.part", age=60)  # still arriving
    await retention(operator_state(api := FakeApi(), tmp_path))
    assert not stale.exists() and writing.exists()
    assert api.names("extractionbatches") == []


async def test_no_upload_expires_after_an_incomplete_listing(tmp_path: Path) -> None:
    """A batch on a page that was never read may use any upload."""
    api = FakeApi()
    for i in range(3):
        api.add_batch(f"b{i}")
    upload(tmp_path, 1, age=99 * HOUR)
    stale = put(tmp_path, f"uploads/.{upload_id(2)}.k3j9x2.part", age=2 * HOUR)

    def second_page_fails(method: str, path: str, q: dict[str, str]) -> KubeError | None:
        if method == "GET" and path.endswith("/extractionbatches") and q.get("continue"):
            return KubeError(410, "Expired", "the continue token expired")
        return None

    api.fail = second_page_fails
    with contextlib.suppress(KubeError):
        await retention(operator_state(api, tmp_path, list_page_size=1))
    assert (tmp_path / "uploads" / upload_id(1)).exists()
    assert not stale.exists()  # partial files need no listing


async def test_an_upload_named_again_after_the_listing_is_kept(tmp_path: Path, monkeypatch) -> None:
    """The API marks an upload as used when a submission names it (its mtime): a batch created
    while the pass lists the others is not in the listing, but its upload is fresh again."""
    api = FakeApi()
    path = put(tmp_path, f"uploads/{upload_id(1)}", age=25 * HOUR)
    pages = api.pages

    def touched_while_listing(*args, **kwargs):
        os.utime(path)  # a submission names it meanwhile
        return pages(*args, **kwargs)

    monkeypatch.setattr(api, "pages", touched_while_listing)
    await retention(operator_state(api, tmp_path))
    assert path.exists()


# --- the same on both stores: a temporary directory and a real S3 server (``store``) ------------


def using_at(
    api: FakeApi, name: str, n: int, at: datetime, state: str | None = None, ended_ago: float = 0
) -> None:
    """``using`` with the job's end ``ended_ago`` seconds before ``at`` (the operator's clock)."""
    using(api, name, n, state)
    if state is not None:
        ended = iso(at - timedelta(seconds=ended_ago))
        entry = api.get("extractionbatches", NS, name)["status"]["jobs"][0]
        entry["createdAt"] = ended
        if "completedAt" in entry:
            entry["completedAt"] = ended
        api.edit("extractionbatches", NS, name, {"status": {"jobs": [entry]}})


async def upload_in(store: StoreUnderTest, n: int, tenant: str = "acme") -> list[str]:
    keys = [f"uploads/{upload_id(n)}", f"upload-owners/{tenant}/{upload_id(n)}"]
    await store.storage.put_bytes(keys[0], b"video")
    await store.storage.put_bytes(keys[1], b"")
    return keys


async def test_uploads_expire_from_either_store_after_their_upload_and_their_last_job(
    store: StoreUnderTest,
) -> None:
    api = FakeApi()
    retention_ = 24 * HOUR
    old = []
    for n in (1, 3, 4, 5, 6, 7):  # uploaded more than the retention ago
        old += await upload_in(store, n)
    old.append(f"upload-owners/acme/{upload_id(8)}")  # its upload is gone
    await store.storage.put_bytes(old[-1], b"")
    await store.storage.put_bytes("uploads/README", b"not an upload: not ours to remove")
    await next_second()
    await upload_in(store, 2)  # recent: kept
    state = store.operator_state(
        api, retention__upload_seconds=retention_, retention__partial_upload_grace_seconds=HOUR
    )
    state.reconciler.clock = store.clock_at(await store.newest(*old), retention_)
    at = state.reconciler.clock()
    using_at(api, "queued", 3, at)  # its job has not even started: kept
    using_at(api, "running", 4, at, state="processing", ended_ago=30 * HOUR)  # running for long: kept
    using_at(api, "done-lately", 5, at, state="completed", ended_ago=1 * HOUR)  # ended lately: kept
    using_at(api, "done-long-ago", 6, at, state="failed", ended_ago=25 * HOUR)  # all past: expired
    using_at(api, "one-done", 7, at, state="cancelled", ended_ago=25 * HOUR)
    using_at(api, "one-queued", 7, at, state="queued")  # another batch still needs it: kept
    await retention(state)
    kept = {f"{d}/{upload_id(n)}" for n in (2, 3, 4, 5, 7) for d in ("uploads", "upload-owners/acme")}
    assert await store.keys() == kept | {"uploads/README"}


async def test_a_fresh_owner_marker_stays_while_its_upload_may_still_arrive(store: StoreUnderTest) -> None:
    """Sent straight to the store, an upload may arrive after the API recorded whose it is."""
    marker = f"upload-owners/acme/{upload_id(1)}"
    await store.storage.put_bytes(marker, b"")
    state = store.operator_state(FakeApi(), retention__partial_upload_grace_seconds=HOUR)
    state.reconciler.clock = store.clock_at(await store.newest(marker), HOUR - 60)
    await retention(state)
    assert await store.keys() == {marker}
    state.reconciler.clock = store.clock_at(await store.newest(marker), HOUR)
    await retention(state)
    assert await store.keys() == set()


async def test_a_direct_upload_marker_stays_while_its_url_may_still_be_used(
    store: StoreUnderTest, monkeypatch
) -> None:
    """A direct upload's URL may be valid for longer than the grace (the API's
    ``upload_url_seconds``): its marker stays until the grace has passed since the URL expired too
    (a PUT begun in time ends a little later), or the bytes would arrive ownerless. Only markers
    that could go are read."""
    direct, streamed, arrived, fresh = (f"upload-owners/acme/{upload_id(n)}" for n in (1, 2, 3, 4))
    url_expires = now() + timedelta(seconds=2 * HOUR)
    declared = json.dumps({"size": 5, "urlExpiresAt": iso(url_expires)}).encode()
    for marker in (direct, arrived):
        await store.storage.put_bytes(marker, declared)
    await store.storage.put_bytes(streamed, b"")
    await store.storage.put_bytes(f"uploads/{upload_id(3)}", b"video")
    old = await store.newest(direct, streamed, arrived)
    await next_second()
    await store.storage.put_bytes(fresh, declared)
    read = []
    stream = store.storage.stream

    def reading(key: str, *args: Any) -> AsyncIterator[bytes]:
        read.append(key)
        return stream(key, *args)

    monkeypatch.setattr(store.storage, "stream", reading)
    state = store.operator_state(FakeApi(), retention__partial_upload_grace_seconds=HOUR)
    state.reconciler.clock = store.clock_at(old, HOUR)
    await retention(state)
    # past the grace, the streamed marker goes; the direct one's URL still takes the bytes
    assert await store.keys() == {direct, arrived, fresh, f"uploads/{upload_id(3)}"}
    assert read == [direct]
    for after_expiry, gone in ((HOUR - 60, set()), (HOUR + 1, {direct, fresh})):
        state.reconciler.clock = lambda at=url_expires + timedelta(seconds=after_expiry): at
        await retention(state)
        assert await store.keys() == {direct, arrived, fresh, f"uploads/{upload_id(3)}"} - gone


async def test_partial_writes_are_removed_from_either_store_after_the_grace(store: StoreUnderTest) -> None:
    """What a writer killed mid-write leaves: a volume's temporary file, an object store's
    incomplete multipart upload. Judged by the store's own clock: this test waits for it."""
    grace = 3
    await store.start_partial(f"uploads/{upload_id(1)}")
    await store.start_partial("job_0123456789abcd01/audio")
    await asyncio.sleep(grace + 0.1)
    await store.start_partial(f"uploads/{upload_id(2)}")  # still arriving
    await retention(store.operator_state(FakeApi(), retention__partial_upload_grace_seconds=grace))
    assert store.partials() == {f"uploads/{upload_id(2)}"}


async def test_no_upload_expires_from_either_store_after_an_incomplete_listing(store: StoreUnderTest) -> None:
    api = FakeApi()
    for i in range(3):
        api.add_batch(f"b{i}")
    keys = await upload_in(store, 1)

    def second_page_fails(method: str, path: str, q: dict[str, str]) -> KubeError | None:
        if method == "GET" and path.endswith("/extractionbatches") and q.get("continue"):
            return KubeError(410, "Expired", "the continue token expired")
        return None

    api.fail = second_page_fails
    state = store.operator_state(api, list_page_size=1)
    state.reconciler.clock = store.clock_at(await store.newest(*keys), 99 * HOUR)
    with contextlib.suppress(KubeError):
        await retention(state)
    assert await store.keys() == set(keys)
    api.fail = None
    await retention(state)  # a complete listing: expired
    assert await store.keys() == set()


async def test_an_upload_named_again_during_the_listing_is_kept_in_either_store(
    store: StoreUnderTest, monkeypatch
) -> None:
    """The API marks an upload used when a submission names it (``Storage.touch``): a batch
    created while the pass lists the others is not in the listing, but its upload is fresh."""
    api = FakeApi()
    keys = await upload_in(store, 1)
    state = store.operator_state(api)
    state.reconciler.clock = store.clock_at(await store.newest(*keys), 24 * HOUR)
    await next_second()
    pages = api.pages

    async def touched_while_listing(*args, **kwargs):
        assert await store.storage.touch(keys[0]) == len(b"video")  # a submission names it meanwhile
        async for page in pages(*args, **kwargs):
            yield page

    monkeypatch.setattr(api, "pages", touched_while_listing)
    await retention(state)
    assert await store.keys() == set(keys)
