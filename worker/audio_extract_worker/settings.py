"""The worker's settings: environment variables with the prefix ``AUDIO_EXTRACT_WORKER_``.

The operator's Job builder sets them (see the worker contract in the team brief):
``JOB`` (the job spec as JSON, or ``JOB_FILE``, a path to a file holding it), ``STORE_ROOT``,
``SCRATCH_DIR``, ``RESULT_PATH``, ``PROGRESS_URL`` + ``PROGRESS_TOKEN``, ``ALLOW_CIDRS``,
``MAX_SOURCE_BYTES``, ``CONNECT_TIMEOUT``, ``READ_TIMEOUT``, ``FFMPEG_TIMEOUT``, ``LOG_FORMAT``,
``TENANT``; with an object store, ``OUTPUT_URL`` + ``OUTPUT_KEY`` and, for an uploaded source,
``SOURCE_URL`` instead of ``STORE_ROOT``.

The two URLs are presigned: whoever holds one may write this job's output or read its source
until the Job's deadline, so they are secrets. They are ``SecretStr`` (a repr or a validation error
shows stars), checked without echoing them, and logged by the object key only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from audio_extract_common.address_policy import AllowList  # the rules alone: no HTTP client
from audio_extract_common.jsonlog import LogFormat


def is_http_url(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


ENV_PREFIX = "AUDIO_EXTRACT_WORKER_"


class WorkerSettings(BaseModel):
    """pydantic-settings' rule for these flat fields: values given, else ``AUDIO_EXTRACT_WORKER_<FIELD>``
    (any case), else the default; read here because importing pydantic-settings would cost the
    worker's start-up more than everything else in its settings."""

    model_config = ConfigDict(extra="ignore")

    def __init__(self, **values: Any) -> None:
        environment = {
            name[len(ENV_PREFIX) :].lower(): value
            for name, value in os.environ.items()
            if name.upper().startswith(ENV_PREFIX)
        }
        super().__init__(**{**environment, **values})

    job: str | None = Field(default=None, description="Job spec: ExtractionJob JSON + jobId, batchId.")
    job_file: Path | None = Field(default=None, description="Alternative to JOB: a file holding that JSON.")
    store_root: Path = Field(default=Path("/data"), description="Mount path of the store volume.")
    scratch_dir: Path = Field(default=Path("/scratch"), description="Writable scratch directory (emptyDir).")
    result_path: Path = Field(default=Path("/dev/termination-log"), description="Where the result JSON goes.")
    progress_url: str | None = Field(default=None, description="Progress endpoint (POST, bearer token).")
    progress_token: str | None = Field(default=None, description="Bearer token for the progress endpoint.")
    progress_interval: float = Field(default=1.0, ge=0, description="Seconds between progress POSTs at most.")
    progress_timeout: float = Field(default=2.0, gt=0, description="Seconds one progress POST may take.")
    allow_cidrs: str = Field(default="", description="Comma-separated CIDRs exempt from the address guard.")
    max_source_bytes: int = Field(default=5_000_000_000, gt=0, description="Download cap (SOURCE_TOO_LARGE).")
    connect_timeout: float = Field(default=10.0, gt=0, description="Seconds to connect to the source host.")
    read_timeout: float = Field(default=30.0, gt=0, description="Seconds without a byte from the source.")
    max_redirects: int = Field(default=3, ge=0, description="Redirects followed, each hop re-checked.")
    ffmpeg_timeout: float = Field(default=3600.0, gt=0, description="Seconds per ffmpeg run (TIMEOUT).")
    log_format: LogFormat = Field(
        default="text", description="`json`: one JSON object per line with jobId, batchId, tenant; `text`."
    )
    tenant: str | None = Field(default=None, description="The batch's tenant, named on every log line.")
    output_url: SecretStr | None = Field(
        default=None,
        description="Presigned PUT for this job's output object (an object store; no STORE_ROOT).",
    )
    output_key: str | None = Field(
        default=None, description="The object OUTPUT_URL writes: reported as outputFile.path.", min_length=1
    )
    source_url: SecretStr | None = Field(
        default=None, description="Presigned GET for the job's uploaded source (upload sources only)."
    )

    @field_validator("output_url", "source_url")
    @classmethod
    def _http_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not is_http_url(value.get_secret_value()):
            raise ValueError("must be an http:// or https:// URL")  # never the value: it is a credential
        return value

    @model_validator(mode="after")
    def _presigned_together(self) -> WorkerSettings:
        if (self.output_url is None) != (self.output_key is None):
            raise ValueError("OUTPUT_URL and OUTPUT_KEY go together")
        if self.source_url is not None and self.output_url is None:
            raise ValueError("SOURCE_URL is only read with OUTPUT_URL (an object store)")
        return self

    @model_validator(mode="after")
    def _parse_allowlist(self) -> WorkerSettings:
        AllowList.parse(self.allow_cidrs)  # fail at start-up on a bad CIDR, not at the first request
        return self

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
