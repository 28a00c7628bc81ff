"""Uploads streamed into the store: a raw body, or the ``file`` part of a multipart form.

Bytes go from the socket to a temporary file next to their final place chunk by chunk (never
held whole in memory) and are renamed into place only when complete and under the cap, so a
partial or oversized upload leaves nothing behind. Every file operation runs in a worker thread:
the store's final fsync flushes up to 5 GB and took the event loop (every request and probe of
the process) with it.

An upload is refused before a byte is read when the store is short of space (503 STORE_FULL) or
the tenant's quota is used up (413 QUOTA_EXCEEDED), and cut off when the bytes that arrive reach
either; a store that fills up while it arrives is STORE_FULL too, not an internal error.
"""

from __future__ import annotations

import contextlib
import errno
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from typing import BinaryIO

import anyio
import anyio.to_thread
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from audio_extract_common.store import FilesystemStore, upload_key

from .auth import Principal
from .errors import InvalidRequest, PayloadTooLarge
from .storespace import StoreSpace
from .upload_quota import UploadQuota, record_owner

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def new_upload_id() -> str:
    return f"upl_{secrets.token_hex(8)}"


class _Sink:
    """Counts and writes bytes, refusing past ``limit`` or what ``take`` (the quota) refuses."""

    def __init__(self, f: BinaryIO, limit: int, take: Callable[[int], None]) -> None:
        self.f, self.limit, self.take, self.size = f, limit, take, 0

    async def write(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self.size > self.limit:
            raise PayloadTooLarge(f"Upload is over the limit of {self.limit} bytes")
        self.take(len(data))
        await anyio.to_thread.run_sync(self.f.write, data)


class _FilePart:
    """Callbacks for python-multipart: keep the data of the part named ``file``."""

    def __init__(self) -> None:
        self.header_field = b""
        self.header_value = b""
        self.is_file = False
        self.seen_file = False
        self.done = False
        self.pending: list[bytes] = []

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": lambda d, s, e: setattr(self, "header_field", self.header_field + d[s:e]),
            "on_header_value": lambda d, s, e: setattr(self, "header_value", self.header_value + d[s:e]),
            "on_header_end": self.header_end,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
        }

    def part_begin(self) -> None:
        self.is_file = False

    def header_end(self) -> None:
        if self.header_field.lower() == b"content-disposition":
            _, params = parse_options_header(self.header_value)
            if params.get(b"name") == b"file" and not self.seen_file:
                self.is_file = self.seen_file = True
        self.header_field = self.header_value = b""

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.is_file:
            self.pending.append(bytes(data[start:end]))

    def part_end(self) -> None:
        if self.is_file:
            self.done = True
        self.is_file = False


@contextlib.asynccontextmanager
async def _writer(store: FilesystemStore, key: str) -> AsyncIterator[BinaryIO]:
    """``store.writer(key)`` with its opening and its closing (fsync, rename or removal) in a thread."""
    writing = store.writer(key)
    f = await anyio.to_thread.run_sync(writing.__enter__)
    try:
        yield f
    except BaseException:
        # Shielded: a cancelled request must still remove its partial file.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(writing.__exit__, *sys.exc_info())
        raise
    await anyio.to_thread.run_sync(writing.__exit__, None, None, None)


async def receive_upload(
    store: FilesystemStore,
    space: StoreSpace,
    quota: UploadQuota,
    who: Principal,
    content_type: str | None,
    declared: int | None,
    stream: AsyncIterator[bytes],
    limit: int,
) -> tuple[str, int]:
    """Check room and quota, store the upload as ``who``'s tenant's; returns ``(fileId, size)``."""
    multipart = parse_options_header(content_type)[0] == b"multipart/form-data"
    await space.check("upload", declared or 0)
    # A multipart body's length includes boundaries and headers: its file part is counted as it comes.
    async with quota.reserve(who.tenant, None if multipart else declared) as take:
        try:
            upload_id, size = await save_upload(store, content_type, stream, limit, take)
        except OSError as e:
            if e.errno not in NO_SPACE:
                raise
            raise space.refusal("upload") from None
        # Inside the reservation: the next one that reads the store finds the owner recorded.
        await anyio.to_thread.run_sync(record_owner, store, who.tenant, upload_id)
    return upload_id, size


async def save_upload(
    store: FilesystemStore,
    content_type: str | None,
    stream: AsyncIterator[bytes],
    limit: int,
    take: Callable[[int], None],
) -> tuple[str, int]:
    """Store the upload and return ``(fileId, size)``."""
    media, params = parse_options_header(content_type)
    upload_id = new_upload_id()
    async with _writer(store, upload_key(upload_id)) as f:
        sink = _Sink(f, limit, take)
        if media == b"multipart/form-data":
            boundary = params.get(b"boundary")
            if not boundary:
                raise InvalidRequest("multipart/form-data without a boundary")
            part = _FilePart()
            parser = MultipartParser(boundary, part.callbacks())  # type: ignore[arg-type]
            try:
                async for chunk in stream:
                    parser.write(chunk)
                    for data in part.pending:
                        await sink.write(data)
                    part.pending.clear()
                parser.finalize()
            except FormParserError as e:
                raise InvalidRequest("Malformed multipart body", str(e)[:200]) from None
            if not part.done:
                raise InvalidRequest("multipart body has no complete part named 'file'")
        else:
            async for chunk in stream:
                await sink.write(chunk)
        if sink.size == 0:
            raise InvalidRequest("Upload is empty")
    return upload_id, sink.size
