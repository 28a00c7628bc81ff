"""Uploads streamed into the store through the API: a raw body, or the ``file`` part of a multipart
form (a direct upload, whose bytes go straight to an object store, is ``direct_uploads``).

Bytes go from the socket to the store chunk by chunk (never held whole in memory) and the upload
appears only when complete and under the cap (``Storage.put_stream`` writes atomically), so a
partial or oversized upload leaves nothing behind. On a volume every file operation runs in a
worker thread: the final fsync flushes up to 5 GB and would take the event loop (every request
and probe of the process) with it.

An upload is refused before a byte is read when the store is short of space (503 STORE_FULL) or
the tenant's quota is used up (413 QUOTA_EXCEEDED), and cut off when the bytes that arrive reach
either; a store that fills up while it arrives is STORE_FULL too, not an internal error.
"""

from __future__ import annotations

import errno
import secrets
from collections.abc import AsyncIterator, Callable

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from audio_extract_common.api_models import MEDIA_TYPE_RE
from audio_extract_common.storage import Storage
from audio_extract_common.store import upload_key

from .auth import Principal
from .errors import InvalidRequest, PayloadTooLarge
from .storespace import StoreSpace
from .upload_quota import UploadQuota, record_owner

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def media_type(value: bytes) -> str | None:
    """``type/subtype``, or None for anything else (it becomes a header of store requests)."""
    text = value.decode("latin-1")
    return text if MEDIA_TYPE_RE.fullmatch(text) else None


def new_upload_id() -> str:
    return f"upl_{secrets.token_hex(8)}"


class _Counter:
    """Counts bytes, refusing past ``limit`` or what ``take`` (the quota) refuses."""

    def __init__(self, limit: int, take: Callable[[int], None]) -> None:
        self.limit, self.take, self.size = limit, take, 0

    def count(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise PayloadTooLarge(f"Upload is over the limit of {self.limit} bytes")
        self.take(len(data))


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


async def receive_upload(
    store: Storage,
    space: StoreSpace,
    quota: UploadQuota,
    who: Principal,
    content_type: str | None,
    declared: int | None,
    stream: AsyncIterator[bytes],
    limit: int,
) -> tuple[str, int]:
    """Check room and quota, store the upload as ``who``'s tenant's; returns ``(fileId, size)``."""
    media = parse_options_header(content_type)[0]
    multipart = media == b"multipart/form-data"
    await space.check("upload", declared or 0)
    # A multipart body's length includes boundaries and headers: its file part is counted as it comes.
    async with quota.reserve(who.tenant, None if multipart else declared) as take:
        upload_id = new_upload_id()
        counter = _Counter(limit, take)
        # the raw body's own type goes with it; a multipart body's is the form's, not the file's
        stored_type = None if multipart else media_type(media)
        try:
            size = await store.put_stream(
                upload_key(upload_id), file_bytes(content_type, stream, counter), content_type=stored_type
            )
        except OSError as e:
            if e.errno not in NO_SPACE:
                raise
            raise space.refusal("upload") from None
        # Inside the reservation: the next one that reads the store finds the owner recorded.
        await record_owner(store, who.tenant, upload_id)
    return upload_id, size


async def file_bytes(
    content_type: str | None, stream: AsyncIterator[bytes], counter: _Counter
) -> AsyncIterator[bytes]:
    """The upload's bytes from the request body, counted; raising ends the write with nothing stored."""
    media, params = parse_options_header(content_type)
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
                    if data:
                        counter.count(data)
                        yield data
                part.pending.clear()
            parser.finalize()
        except FormParserError as e:
            raise InvalidRequest("Malformed multipart body", str(e)[:200]) from None
        if not part.done:
            raise InvalidRequest("multipart body has no complete part named 'file'")
    else:
        async for chunk in stream:
            if chunk:
                counter.count(chunk)
                yield chunk
    if counter.size == 0:
        raise InvalidRequest("Upload is empty")
