"""Resumable downloads: what a ``Range`` answer means for the partial file on disk (pure).

A download is written to ``<name>.part`` and renamed when whole. When a ``.part`` is there
(an earlier attempt was cut off), the request asks for ``Range: bytes=<its size>-``: a 206 that
starts there is appended, a 200 (a server that ignores ``Range``) rewrites the file from the start,
and a 416 means the ``.part`` is already whole (or longer than the file, then it starts over).
A finished job's output never changes, so no validator (``If-Range``) is needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_CONTENT_RANGE = re.compile(r"^bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)$")


@dataclass(frozen=True)
class Resume:
    """Where to write the answer's bytes: ``offset`` into the ``.part`` (0 = from scratch),
    ``total`` the whole file's size when known, ``done`` when nothing is left to fetch."""

    offset: int
    total: int | None
    done: bool = False


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def parse_content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """``(first, last, total)`` of ``bytes first-last/total`` (or ``bytes */total``); Nones if unreadable."""
    m = _CONTENT_RANGE.match((value or "").strip())
    if not m:
        return None, None, None
    first, last, total = m.groups()
    return (
        int(first) if first is not None else None,
        int(last) if last is not None else None,
        int(total) if total not in (None, "*") else None,
    )


def resume(status: int, content_range: str | None, content_length: str | None, have: int) -> Resume:
    """How to treat the answer to a download that asked for bytes from ``have`` on."""
    first, _, total = parse_content_range(content_range)
    if status == 206:
        if first != have:
            raise ValueError(f"asked for bytes from {have}, the server sent from {first}")
        return Resume(have, total)
    if status == 416:
        # Nothing at or past `have`: the .part is whole if it is exactly the file's size.
        return Resume(have, total, done=total is not None and total == have)
    return Resume(0, int(content_length) if content_length and content_length.isdigit() else None)
