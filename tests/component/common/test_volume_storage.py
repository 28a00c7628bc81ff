"""The volume store through the async ``Storage`` interface (audio_extract_common.storage) on a
real temporary directory: what the API and the operator rely on, with the same answers as the S3
store where the two agree (``delete_prefix``, ``list``), and the volume's own (no URLs, a local
path, free space, ``.part`` files as partial writes)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from audio_extract_common.objectstore import ObjectNotFound
from audio_extract_common.storage import Storage, VolumeStorage, open_storage


@pytest.fixture
def store(tmp_path: Path) -> VolumeStorage:
    return VolumeStorage(tmp_path / "store")


def files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read(store: VolumeStorage, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([c async for c in store.stream(key, start, end)])


async def test_a_stream_is_written_whole_and_read_back_in_ranges(store: VolumeStorage) -> None:
    assert await store.put_stream("job_1/a.mp3", chunks(b"0123", b"456789")) == 10
    assert await store.size("job_1/a.mp3") == 10
    assert await read(store, "job_1/a.mp3") == b"0123456789"
    assert await read(store, "job_1/a.mp3", 2, 4) == b"234"  # inclusive, as HTTP ranges
    assert await read(store, "job_1/a.mp3", 8) == b"89"
    with pytest.raises(ValueError):
        await read(store, "job_1/a.mp3", 5, 4)
    assert await store.put_bytes("uploads/upl_1", b"") == 0 and await store.size("uploads/upl_1") == 0
    assert await store.size("job_1/none.mp3") is None
    with pytest.raises(ObjectNotFound):
        await read(store, "job_1/none.mp3")


async def test_a_failed_or_cancelled_write_leaves_nothing_behind(store: VolumeStorage) -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"half"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        await store.put_stream("uploads/upl_1", failing())

    started = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"x" * 1024
            started.set()
            await asyncio.sleep(0.01)

    writing = asyncio.create_task(store.put_stream("uploads/upl_2", endless()))
    await started.wait()
    writing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writing
    assert files(store.files.root) == set()  # no object, no temporary file


async def test_a_reader_never_sees_a_write_in_progress(store: VolumeStorage) -> None:
    await store.put_bytes("job_1/a.mp3", b"old")
    release = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"new "
        await release.wait()
        yield b"bytes"

    writing = asyncio.create_task(store.put_stream("job_1/a.mp3", slow()))
    await asyncio.sleep(0.05)
    assert await read(store, "job_1/a.mp3") == b"old"
    assert [i.key async for i in store.list("job_1/")] == ["job_1/a.mp3"]  # the .part file is not listed
    release.set()
    await writing
    assert await read(store, "job_1/a.mp3") == b"new bytes"


async def test_list_takes_a_plain_prefix_and_reads_only_what_it_can_name(store: VolumeStorage) -> None:
    for key in ("job_1/a.mp3", "job_10/b.mp3", "job_2/sub/c.wav", "uploads/upl_1", "upload-owners/t/upl_1"):
        await store.put_bytes(key, key.encode())
    every = [i.key async for i in store.list()]
    assert every == sorted(every) and len(every) == 5
    assert [i.key async for i in store.list("job_1")] == ["job_1/a.mp3", "job_10/b.mp3"]
    assert [i.key async for i in store.list("job_1/")] == ["job_1/a.mp3"]
    assert [i.key async for i in store.list("uploads/")] == ["uploads/upl_1"]
    assert [i.key async for i in store.list("upload")] == ["upload-owners/t/upl_1", "uploads/upl_1"]
    assert [i.key async for i in store.list("nothing/")] == []
    (info,) = [i async for i in store.list("job_2/")]
    assert (info.key, info.size) == ("job_2/sub/c.wav", len(b"job_2/sub/c.wav"))
    assert abs(info.last_modified.timestamp() - time.time()) < 5 and info.last_modified.tzinfo is not None


async def test_a_listing_reads_only_the_directories_its_prefix_can_name(
    store: VolumeStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan of the outputs must not read every upload on network storage, nor the reverse."""
    for key in ("job_1/a.mp3", "job_2/sub/c.wav", "uploads/upl_1", "upload-owners/t/upl_1", "notes/n"):
        await store.put_bytes(key, b"x")
    walked: list[str] = []
    walk = os.walk

    def recording(top, *args, **kwargs):  # type: ignore[no-untyped-def]
        for entry in walk(top, *args, **kwargs):
            walked.append(Path(entry[0]).relative_to(store.files.root).as_posix())
            yield entry

    monkeypatch.setattr(os, "walk", recording)
    assert [i.key async for i in store.list("job_")] == ["job_1/a.mp3", "job_2/sub/c.wav"]
    assert sorted(walked) == [".", "job_1", "job_2", "job_2/sub"]
    walked.clear()
    assert [i.key async for i in store.list("uploads/")] == ["uploads/upl_1"]
    assert walked == ["uploads"]


async def test_delete_prefix_removes_a_file_or_a_directory_and_nothing_beside(store: VolumeStorage) -> None:
    for key in ("job_1/a.mp3", "job_1/sub/b.mp3", "job_10/c.mp3", "uploads/upl_1"):
        await store.put_bytes(key, b"x")
    assert await store.delete_prefix("job_1") == 2
    assert files(store.files.root) == {"job_10/c.mp3", "uploads/upl_1"}
    assert await store.delete_prefix("uploads/upl_1") == 1
    assert await store.delete_prefix("job_3") == 0  # nothing there is fine
    await store.delete("job_10/c.mp3")
    await store.delete("job_10/c.mp3")
    assert files(store.files.root) == set()


async def test_touch_moves_the_last_modified_time_and_answers_the_size(store: VolumeStorage) -> None:
    await store.put_bytes("uploads/upl_1", b"video")
    path = store.files.root / "uploads" / "upl_1"
    os.utime(path, (1000, 1000))
    assert await store.touch("uploads/upl_1") == 5
    (info,) = [i async for i in store.list("uploads/")]
    assert abs(info.last_modified.timestamp() - time.time()) < 5
    assert await store.touch("uploads/upl_2") is None


async def test_stale_partial_writes_go_and_fresh_ones_stay(store: VolumeStorage) -> None:
    await store.put_bytes("uploads/upl_1", b"done")
    root = store.files.root
    (root / "job_1").mkdir()
    stale = [root / "uploads" / ".upl_2.abc.part", root / "job_1" / ".audio.mp3.def.part"]
    fresh = root / "uploads" / ".upl_3.ghi.part"
    for path in [*stale, fresh]:
        path.write_bytes(b"part")
    for path in stale:
        os.utime(path, (time.time() - 7200,) * 2)
    os.utime(root / "uploads" / "upl_1", (0, 0))  # a whole, old file is not a partial one
    assert await store.abort_stale_uploads(timedelta(hours=1)) == 2
    assert files(root) == {"uploads/upl_1", "uploads/.upl_3.ghi.part"}


async def test_the_volume_presigns_nothing_and_knows_its_path_and_space(store: VolumeStorage) -> None:
    assert await store.presign_get("job_1/a.mp3", 60) is None
    assert await store.presign_put("uploads/upl_1", 60) is None
    assert store.local_path("job_1/a.mp3") == (store.files.root / "job_1" / "a.mp3").resolve()
    free = await store.free_bytes()
    assert free is not None and free > 0
    with pytest.raises(ValueError):
        store.local_path("../outside")


async def test_open_storage_gives_the_volume_and_refuses_a_store_without_its_settings(tmp_path: Path) -> None:
    async with open_storage("volume", root=tmp_path) as opened:
        storage: Storage = opened
        await storage.put_bytes("k", b"v")
    assert (tmp_path / "k").read_bytes() == b"v"
    with pytest.raises(ValueError, match="root"):
        async with open_storage("volume"):
            pass
    with pytest.raises(ValueError, match="settings"):
        async with open_storage("s3"):
            pass
