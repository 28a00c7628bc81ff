"""The store as the API and the operator use it: one async interface, two backends.

``Storage`` is what their code talks to; ``VolumeStorage`` is the directory (a ReadWriteMany volume
in a cluster, `store.FilesystemStore` run in threads) and ``objectstore.S3Store`` is any S3-compatible
service. What differs shows in a few answers, not in the callers' branches: only an object store
presigns (the volume answers None and the caller streams instead), and only a volume knows its
free space or has a local path to send a file from. ``open_storage`` picks one from the settings.

Keys are the same on both (``store.output_key``, ``store.upload_key``, ``store.upload_owner_key``).
The worker does not use this: it gets a mounted directory or presigned URLs (``Store``, sync).
"""

from __future__ import annotations

import builtins
import contextlib
import os
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol

import anyio

from .objectstore import ObjectInfo, ObjectNotFound, PresignedPut, S3Settings
from .store import FilesystemStore, is_partial

StoreType = Literal["volume", "s3"]
CHUNK = 1 << 20


class Storage(Protocol):
    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str | None = None
    ) -> int: ...
    async def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> int: ...
    async def size(self, key: str) -> int | None: ...
    def stream(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]: ...
    async def touch(self, key: str) -> int | None: ...
    async def delete(self, key: str) -> None: ...
    async def delete_prefix(self, prefix: str) -> int: ...
    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]: ...
    async def presign_get(
        self, key: str, expires_in: int, *, filename: str | None = None, content_type: str | None = None
    ) -> str | None: ...
    async def presign_put(
        self, key: str, expires_in: int, *, content_type: str | None = None, content_length: int | None = None
    ) -> PresignedPut | None: ...
    async def abort_stale_uploads(self, older_than: timedelta) -> int: ...
    async def free_bytes(self) -> int | None: ...
    def local_path(self, key: str) -> Path | None: ...


class VolumeStorage:
    """A directory, through ``FilesystemStore``; every file system call runs in a thread (a large
    fsync, a scan of network storage must not stop the event loop)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.files = FilesystemStore(root)

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str | None = None
    ) -> int:
        writing = self.files.writer(key)
        out = await anyio.to_thread.run_sync(writing.__enter__)
        size = 0
        try:
            async for chunk in chunks:
                await anyio.to_thread.run_sync(out.write, chunk)
                size += len(chunk)
        except BaseException as e:
            with anyio.CancelScope(shield=True):  # the temporary file goes even when cancelled
                await anyio.to_thread.run_sync(writing.__exit__, type(e), e, e.__traceback__)
            raise
        await anyio.to_thread.run_sync(writing.__exit__, None, None, None)  # fsync and rename
        return size

    async def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> int:
        async def one() -> AsyncIterator[bytes]:
            yield data

        return await self.put_stream(key, one())

    async def size(self, key: str) -> int | None:
        return await anyio.to_thread.run_sync(self.files.size, key)

    async def stream(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"not a byte range: {start}-{end}")
        try:
            f = await anyio.to_thread.run_sync(self.files.open, key)
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        try:
            await anyio.to_thread.run_sync(f.seek, start)
            left = None if end is None else end - start + 1
            while left is None or left > 0:
                chunk = await anyio.to_thread.run_sync(f.read, CHUNK if left is None else min(CHUNK, left))
                if not chunk:
                    break
                if left is not None:
                    left -= len(chunk)
                yield chunk
        finally:
            f.close()

    async def touch(self, key: str) -> int | None:
        return await anyio.to_thread.run_sync(self.files.touch, key)

    async def delete(self, key: str) -> None:
        await anyio.to_thread.run_sync(self.files.delete_prefix, key)

    async def delete_prefix(self, prefix: str) -> int:
        """Delete the file ``prefix`` or the directory ``prefix/``, as the S3 store deletes the
        object and everything under ``prefix/``; returns how many files went."""
        count = sum([1 async for _ in self.list(prefix.rstrip("/") + "/")]) if prefix else 0
        path = self.files.local_path(prefix) if prefix and not prefix.endswith("/") else None
        if path is not None:  # the file ``prefix`` itself, like the S3 store's object ``prefix``
            count += await anyio.to_thread.run_sync(path.is_file)
        await anyio.to_thread.run_sync(self.files.delete_prefix, prefix.rstrip("/"))
        return count

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Files (not partial ones) whose key starts with ``prefix``, in key order."""
        for info in await anyio.to_thread.run_sync(self._listing, prefix):
            yield info

    def _listing(self, prefix: str) -> builtins.list[ObjectInfo]:
        root = self.files.root
        # walk only the directories the prefix can name: `uploads/` never scans the outputs, and
        # `job_` (every output) never the uploads
        top = root / prefix.rsplit("/", 1)[0] if "/" in prefix else root
        found: builtins.list[ObjectInfo] = []
        for directory, subdirectories, names in os.walk(top):
            here = Path(directory).relative_to(root).as_posix()
            subdirectories[:] = [
                d
                for d in subdirectories
                if (key := d if here == "." else f"{here}/{d}").startswith(prefix)
                or prefix.startswith(key + "/")
            ]
            for name in names:
                path = Path(directory) / name
                key = path.relative_to(root).as_posix()
                if is_partial(name) or not key.startswith(prefix):
                    continue
                with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                    st = path.stat()
                    found.append(ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC)))
        return sorted(found, key=lambda info: info.key)

    async def presign_get(
        self, key: str, expires_in: int, *, filename: str | None = None, content_type: str | None = None
    ) -> str | None:
        return None  # a volume has no URL of its own: the API streams it

    async def presign_put(
        self, key: str, expires_in: int, *, content_type: str | None = None, content_length: int | None = None
    ) -> PresignedPut | None:
        return None

    async def abort_stale_uploads(self, older_than: timedelta) -> int:
        """Remove partial files (a writer killed mid-write) untouched for ``older_than``."""
        return await anyio.to_thread.run_sync(self._remove_partials, older_than.total_seconds())

    def _remove_partials(self, seconds: float) -> int:
        cutoff, removed = datetime.now(UTC).timestamp() - seconds, 0
        for directory, _, names in os.walk(self.files.root):
            for name in names:
                path = Path(directory) / name
                with contextlib.suppress(FileNotFoundError):
                    if is_partial(name) and path.stat().st_mtime <= cutoff:
                        path.unlink()
                        removed += 1
        return removed

    async def free_bytes(self) -> int | None:
        return await anyio.to_thread.run_sync(self.files.free_bytes)

    def local_path(self, key: str) -> Path | None:
        return self.files.local_path(key)


@contextlib.asynccontextmanager
async def open_storage(
    store_type: StoreType, *, root: Path | None = None, s3: S3Settings | None = None
) -> AsyncIterator[Storage]:
    """The configured store, open for the block (an S3 store holds a connection pool)."""
    if store_type == "volume":
        if root is None:
            raise ValueError("a volume store needs its root directory")
        yield VolumeStorage(root)
        return
    if s3 is None:
        raise ValueError("an s3 store needs its settings (bucket, endpoint, ...)")
    from .objectstore import S3Store

    async with S3Store(s3) as store:
        yield store
