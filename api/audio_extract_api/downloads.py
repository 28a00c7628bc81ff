"""Downloads: which answer a job's state gets, Range parsing, streaming from the store, and the
presigned URLs an object store gives an output (docs/contract.md §7).

A volume's file is read straight from its path; an object store's through ``Storage.stream``.
With an object store a client may take the bytes from the store itself: ``?redirect=true`` answers
307 to a presigned GET, and ``outputFile.url`` in the views is one, valid ``download_url_seconds``.
Signing is local (no request to the store), so a view of a batch of ten costs nothing more.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from starlette.responses import RedirectResponse, Response, StreamingResponse

from audio_extract_common.batch_status import JobState, JobStatus, OutputFile
from audio_extract_common.filenames import content_disposition
from audio_extract_common.formats import FORMATS, Format
from audio_extract_common.objectstore import ObjectNotFound
from audio_extract_common.storage import Storage
from audio_extract_common.store import output_key

from .errors import FileExpired, JobFailed, JobNotCompleted, RangeNotSatisfiable
from .views import batch_status, is_expired, job_count, job_id_of, job_status

CHUNK = 256 * 1024
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_POSITION_DIGITS = 18
"""A byte position of more digits is read as 10**18, past any file: Python refuses to parse a
number of over 4,300 digits."""


def completed_output(st: JobStatus | None) -> OutputFile:
    """The job's outputFile, or the ApiError its state calls for (None: not in status yet, queued)."""
    if st is None or st.status in (JobState.queued, JobState.processing):
        raise JobNotCompleted()
    state = st.status
    if state in (JobState.failed, JobState.cancelled):
        err = st.error
        if err is None:
            code = "CANCELLED" if state == JobState.cancelled else "INTERNAL_ERROR"
            raise JobFailed(code, f"The job {state.value}", None)
        raise JobFailed(err.code.value, err.message or f"The job {state.value}", err.details)
    out = st.outputFile
    if out is None or is_expired(st):
        raise FileExpired()
    return out


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(first, last)`` inclusive for a single satisfiable byte range; None = whole file.

    Multiple ranges are answered with the whole file (RFC 9110 allows ignoring Range).
    """
    if not header:
        return None
    m = _RANGE_RE.match(header.strip().replace(" ", ""))
    if not m:
        return None  # not a single bytes range: ignore it
    start, end = m.group(1), m.group(2)
    if not start and not end:
        return None
    if not start:  # suffix: the last N bytes
        n = _position(end)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
        return max(0, size - n), size - 1
    first = _position(start)
    asked_last = _position(end) if end else size - 1
    if first >= size or asked_last < first:
        raise RangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return first, min(asked_last, size - 1)


def _position(digits: str) -> int:
    return int(digits) if len(digits) <= _POSITION_DIGITS else 10**_POSITION_DIGITS


async def _chunks(path: Path, first: int, length: int) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as f:
        await f.seek(first)
        remaining = length
        while remaining > 0:
            data = await f.read(min(CHUNK, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data


def _media_type(out: OutputFile) -> str:
    fmt = out.format
    return FORMATS[Format(fmt)].media_type if fmt in Format.__members__ else "application/octet-stream"


def output_path(job_id: str, out: OutputFile) -> str:
    """The output's key in the store: where the worker reported it, else where it used to write it."""
    return out.path or output_key(job_id, out.filename)


def _plan(
    out: OutputFile, name: str, size: int, range_header: str | None
) -> tuple[int, dict[str, str], int, int]:
    """``(status, headers, first byte, length)``: the whole output (200) or the range asked (206)."""
    headers = {
        "Content-Disposition": content_disposition(out.filename or name),
        "Accept-Ranges": "bytes",
    }
    rng = parse_range(range_header, size)
    if rng is None:
        headers["Content-Length"] = str(size)
        return 200, headers, 0, size
    first, last = rng
    headers["Content-Length"] = str(last - first + 1)
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return 206, headers, first, last - first + 1


def file_response(path: Path, out: OutputFile, range_header: str | None) -> StreamingResponse:
    status, headers, first, length = _plan(out, path.name, path.stat().st_size, range_header)
    return StreamingResponse(_chunks(path, first, length), status, headers, _media_type(out))


async def download_response(
    store: Storage, job_id: str, out: OutputFile, range_header: str | None
) -> StreamingResponse:
    """The output's bytes from the store (FILE_EXPIRED when they are gone)."""
    key = output_path(job_id, out)
    path = store.local_path(key)
    if path is not None:  # a volume: the file itself
        if not path.is_file():
            raise FileExpired()
        return file_response(path, out, range_header)
    size = await store.size(key)
    if size is None:
        raise FileExpired()
    status, headers, first, length = _plan(out, key.rpartition("/")[2], size, range_header)
    body = await _opened(store, key, first, length)
    return StreamingResponse(body, status, headers, _media_type(out))


async def _opened(store: Storage, key: str, first: int, length: int) -> AsyncIterator[bytes]:
    """The object's bytes, its first chunk already read: one removed since its size was read is
    then 410, not a 200 cut off after its headers."""
    if not length:
        return _nothing()
    chunks = store.stream(key, first, first + length - 1)
    try:
        head = await anext(chunks)
    except (ObjectNotFound, StopAsyncIteration):
        raise FileExpired() from None
    return _then(head, chunks)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield


async def _then(head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield head
    async for chunk in rest:
        yield chunk


async def presign_output(store: Storage, job_id: str, out: OutputFile, seconds: int) -> str | None:
    """A URL that GETs the output from the store itself for ``seconds``, naming its file; None when
    the store cannot presign (a volume)."""
    return await store.presign_get(
        output_path(job_id, out), seconds, filename=out.filename, content_type=_media_type(out)
    )


async def redirect_response(store: Storage, job_id: str, out: OutputFile, seconds: int) -> Response | None:
    """307 to a presigned GET of the output, FILE_EXPIRED when it is gone; None when the store
    cannot presign."""
    url = await presign_output(store, job_id, out, seconds)
    if url is None:
        return None
    if await store.size(output_path(job_id, out)) is None:
        raise FileExpired()
    # Short-lived and for this caller: no cache may keep it
    return RedirectResponse(url, 307, headers={"Cache-Control": "no-store"})


@dataclass(frozen=True)
class OutputLinks:
    """``outputFile.url`` for the views: a presigned GET with an object store, valid ``seconds`` from
    now; nothing with a volume (the views keep the relative download path)."""

    store: Storage
    seconds: int

    async def of(self, obj: dict[str, Any], indexes: Iterable[int] | None = None) -> dict[int, str]:
        """The links of the jobs at ``indexes`` (None: every job of the batch)."""
        links: dict[int, str] = {}
        status = batch_status(obj)
        for index in range(job_count(obj)) if indexes is None else indexes:
            st = job_status(obj, index, status)
            if st is None or st.status != JobState.completed or st.outputFile is None or is_expired(st):
                continue  # no output to link to: the download path answers why
            url = await presign_output(self.store, job_id_of(obj, index, status), st.outputFile, self.seconds)
            if url is None:
                break  # the store does not presign: no other job's will either
            links[index] = url
        return links
