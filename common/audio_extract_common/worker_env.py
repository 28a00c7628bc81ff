"""The worker's environment: what the operator passes each extraction's Job, as
``AUDIO_EXTRACT_WORKER_<FIELD>`` variables, declared once for both sides.

The operator makes a ``WorkerEnv`` per Job (``audio_extract_operator.jobs.worker_env``) and renders
it into the container's ``env`` (``to_env``); the worker reads it back (``from_environ``, or its
``WorkerSettings``, which adds what only the worker has). A field the operator leaves unset is no
variable in the Job, so the worker takes the default declared here.

Variables are read as pydantic-settings reads flat fields (``AUDIO_EXTRACT_WORKER_<FIELD>`` in any
case), without importing it: the worker parses this before its first ffprobe, and
pydantic-settings alone would cost its start-up more than everything else in its settings. Hence
pydantic and the standard library only (``address_policy`` and ``jsonlog`` are both).

The two URLs are presigned: whoever holds one may write this job's output or read its source
until the Job's deadline, so they are secrets. They are ``SecretStr`` (a repr or a validation error
shows stars), checked without echoing them, written only into the Job's ``env`` and logged by the
object key only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from .address_policy import AllowList  # the rules alone: no HTTP client
from .jsonlog import LogFormat

ENV_PREFIX = "AUDIO_EXTRACT_WORKER_"
TMPDIR = "TMPDIR"
"""Set to the scratch directory: Python and ffmpeg write temporary files, and the worker's root
filesystem is read-only."""


def is_http_url(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def variables(environ: Mapping[str, str]) -> dict[str, str]:
    """The worker's variables in ``environ``, by field name."""
    return {
        name[len(ENV_PREFIX) :].lower(): value
        for name, value in environ.items()
        if name.upper().startswith(ENV_PREFIX)
    }


class WorkerEnv(BaseModel):
    """Every variable the operator sets for a worker, in the order the Job lists them."""

    model_config = ConfigDict(extra="ignore")

    job: str | None = Field(default=None, description="Job spec: ExtractionJob JSON + jobId, batchId.")
    store_root: Path = Field(default=Path("/data"), description="Mount path of the store volume.")
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
    scratch_dir: Path = Field(default=Path("/scratch"), description="Writable scratch directory (emptyDir).")
    result_path: Path = Field(default=Path("/dev/termination-log"), description="Where the result JSON goes.")
    allow_cidrs: str = Field(default="", description="Comma-separated CIDRs exempt from the address guard.")
    connect_timeout: float = Field(default=10.0, gt=0, description="Seconds to connect to the source host.")
    read_timeout: float = Field(default=30.0, gt=0, description="Seconds without a byte from the source.")
    max_source_bytes: int = Field(default=5_000_000_000, gt=0, description="Download cap (SOURCE_TOO_LARGE).")
    # A few MB of compressed silence decode to gigabytes of WAV in a store every tenant shares.
    max_source_seconds: float = Field(
        default=43200.0, gt=0, description="Longest audio a job extracts, as probed (SOURCE_TOO_LARGE)."
    )
    max_output_bytes: int = Field(
        default=13_000_000_000,
        gt=0,
        description="Output size cap (ffmpeg -fs; SOURCE_TOO_LARGE), for a duration the probe got wrong; "
        "above the 12.4 GB of 12 h of 24-bit 48 kHz stereo WAV, the largest output 12 h can make.",
    )
    log_format: LogFormat = Field(
        default="text", description="`json`: one JSON object per line with jobId, batchId, tenant; `text`."
    )
    tenant: str | None = Field(default=None, description="The batch's tenant, named on every log line.")
    progress_url: str | None = Field(default=None, description="Progress endpoint (POST, bearer token).")
    progress_token: str | None = Field(default=None, description="Bearer token for the progress endpoint.")

    @field_validator("output_url", "source_url")
    @classmethod
    def _http_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not is_http_url(value.get_secret_value()):
            raise ValueError("must be an http:// or https:// URL")  # never the value: it is a credential
        return value

    @model_validator(mode="after")
    def _presigned_together(self) -> Self:
        if (self.output_url is None) != (self.output_key is None):
            raise ValueError("OUTPUT_URL and OUTPUT_KEY go together")
        if self.source_url is not None and self.output_url is None:
            raise ValueError("SOURCE_URL is only read with OUTPUT_URL (an object store)")
        return self

    @model_validator(mode="after")
    def _parse_allowlist(self) -> Self:
        AllowList.parse(self.allow_cidrs)  # fail at start-up on a bad CIDR, not at the first request
        return self

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, **values: Any) -> Self:
        """The values given, else ``environ``'s (the process's by default), else the defaults."""
        return cls.model_validate({**variables(os.environ if environ is None else environ), **values})

    @classmethod
    def secret_variables(cls) -> tuple[str, ...]:
        """The variables holding credentials: never logged, nor left for a child process."""
        return tuple(
            ENV_PREFIX + name.upper()
            for name, field in cls.model_fields.items()
            if SecretStr in (field.annotation, *getattr(field.annotation, "__args__", ()))
        )

    def to_env(self) -> list[dict[str, str]]:
        """The container's ``env``: each field set and not None, then ``TMPDIR``."""
        env = [
            {"name": ENV_PREFIX + name.upper(), "value": _text(value)}
            for name in type(self).model_fields
            if name in self.model_fields_set and (value := getattr(self, name)) is not None
        ]
        env.append({"name": TMPDIR, "value": str(self.scratch_dir)})
        return env


def _text(value: object) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)
