"""The job the worker runs: one ExtractionJob plus its public ids."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from pydantic import Field

from audio_extract_common.resource import ExtractionJob

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_FILENAME = 128


class WorkerJob(ExtractionJob):
    jobId: str = Field(pattern=r"^job_[0-9a-z]{16}$")
    batchId: str = Field(pattern=r"^batch_[0-9a-z]{16}$")


def sanitize(name: str) -> str:
    """Reduce to ``[A-Za-z0-9._-]``, no leading dot/dash, at most 128 characters ("" if nothing is left)."""
    cleaned = _UNSAFE.sub("_", name).strip("._-")
    return cleaned[:MAX_FILENAME].rstrip("._-")


def default_filename(job: WorkerJob) -> str:
    """``options.filename``, else the source URL's base name without extension, else the jobId."""
    if job.options.filename:
        name = sanitize(job.options.filename)
        if name:
            return name
    if job.source.type == "url" and job.source.url:
        base = PurePosixPath(unquote(urlsplit(job.source.url).path)).name
        stem = base.rsplit(".", 1)[0] if "." in base else base
        name = sanitize(stem)
        if name:
            return name
    return job.jobId
