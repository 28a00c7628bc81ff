"""The job the worker runs: one ExtractionJob plus its public ids."""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from pydantic import Field

from audio_extract_common.batch_spec import ExtractionJob
from audio_extract_common.filenames import sanitize


class WorkerJob(ExtractionJob):
    jobId: str = Field(pattern=r"^job_[0-9a-z]{16}$")
    batchId: str = Field(pattern=r"^batch_[0-9a-z]{16}$")


def default_filename(job: WorkerJob, extension: str = "") -> str:
    """``options.filename``, else the source URL's base name without extension, else the jobId;
    sanitized (``filenames.sanitize``), without ``extension`` if the name already ends in it."""
    if job.options.filename:
        name = sanitize(job.options.filename, extension)
        if name:
            return name
    if job.source.type == "url" and job.source.url:
        base = PurePosixPath(unquote(urlsplit(job.source.url).path)).name
        stem = base.rsplit(".", 1)[0] if "." in base else base
        name = sanitize(stem, extension)
        if name:
            return name
    return job.jobId
