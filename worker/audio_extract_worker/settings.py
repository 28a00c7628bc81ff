"""The worker's settings: what the operator passes it (``audio_extract_common.worker_env``, the
``AUDIO_EXTRACT_WORKER_`` variables the Job sets), and what only the worker has, read the same way:
``JOB_FILE`` (a path to a file holding the job's JSON, instead of ``JOB``), ``PROGRESS_INTERVAL``,
``PROGRESS_TIMEOUT``, ``MAX_REDIRECTS`` and ``FFMPEG_TIMEOUT``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field

from audio_extract_common.address_policy import AllowList  # the rules alone: no HTTP client
from audio_extract_common.worker_env import WorkerEnv, variables


class WorkerSettings(WorkerEnv):
    """Values given, else the process's ``AUDIO_EXTRACT_WORKER_<FIELD>`` variables, else the defaults."""

    def __init__(self, **values: Any) -> None:
        super().__init__(**{**variables(os.environ), **values})

    job_file: Path | None = Field(default=None, description="Alternative to JOB: a file holding that JSON.")
    progress_interval: float = Field(default=1.0, ge=0, description="Seconds between progress POSTs at most.")
    progress_timeout: float = Field(default=2.0, gt=0, description="Seconds one progress POST may take.")
    max_redirects: int = Field(default=3, ge=0, description="Redirects followed, each hop re-checked.")
    ffmpeg_timeout: float = Field(default=3600.0, gt=0, description="Seconds per ffmpeg run (TIMEOUT).")

    @property
    def allow(self) -> AllowList:
        return AllowList.parse(self.allow_cidrs)

    @property
    def presigned(self) -> bool:
        """The store is an object store reached through the operator's presigned URLs."""
        return self.output_url is not None

    def job_json(self) -> str:
        if self.job:
            return self.job
        if self.job_file:
            return self.job_file.read_text()
        raise ValueError("neither AUDIO_EXTRACT_WORKER_JOB nor AUDIO_EXTRACT_WORKER_JOB_FILE is set")
