"""Downloads: which answer a job's state gets, Range parsing, and streaming from the store."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from starlette.responses import StreamingResponse

from audio_extract_common.filenames import content_disposition
from audio_extract_common.formats import FORMATS, Format
from audio_extract_common.resource import JobState

from .errors import FileExpired, JobFailed, JobNotCompleted, RangeNotSatisfiable
from .views import is_expired

CHUNK = 256 * 1024
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def completed_output(st: dict[str, Any]) -> dict[str, Any]:
    """The job's outputFile, or the ApiError its state calls for."""
    state = st.get("status") or JobState.queued.value
    if state in (JobState.queued.value, JobState.processing.value):
        raise JobNotCompleted()
    if state in (JobState.failed.value, JobState.cancelled.value):
        err = st.get("error") or {}
        code = err.get("code") or ("CANCELLED" if state == JobState.cancelled.value else "INTERNAL_ERROR")
        raise JobFailed(code, err.get("message") or f"The job {state}", err.get("details"))
    out = st.get("outputFile")
    if not out or is_expired(st):
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
        n = int(end)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
        return max(0, size - n), size - 1
    first = int(start)
    last = min(int(end), size - 1) if end else size - 1
    if first >= size or (end and int(end) < first):
        raise RangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return first, last


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


def file_response(path: Path, out: dict[str, Any], range_header: str | None) -> StreamingResponse:
    size = path.stat().st_size
    fmt = out.get("format")
    media_type = FORMATS[Format(fmt)].media_type if fmt in Format.__members__ else "application/octet-stream"
    headers = {
        "Content-Disposition": content_disposition(out.get("filename") or path.name),
        "Accept-Ranges": "bytes",
    }
    rng = parse_range(range_header, size)
    if rng is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(_chunks(path, 0, size), 200, headers, media_type)
    first, last = rng
    headers["Content-Length"] = str(last - first + 1)
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return StreamingResponse(_chunks(path, first, last - first + 1), 206, headers, media_type)
