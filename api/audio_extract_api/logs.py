"""The API's log lines carry the tenant of the request they belong to (docs/contract.md §7).

The caller's tenant is put in a context variable once the key is known (``deps.caller``); a
filter on the log handlers copies it into every record as ``tenant`` (``-`` before or without
authentication), so the process's own lines and uvicorn's access lines name it without every
call site passing it along. Each request runs in its own task, whose context no other sees.

The same way, ``batch_id`` and ``job_id`` name the batch and the job a request is about, once the
id in its path was checked (``deps.find_job``, ``deps.find_batch``) or its batch was created
(``submit``). ``log_format`` ``json`` writes each line as a JSON object with ``tenant``,
``batchId`` and ``jobId`` fields (``audio_extract_common.jsonlog``); ``text`` keeps uvicorn's lines.
"""

from __future__ import annotations

import copy
import logging
from contextvars import ContextVar
from typing import Any

from uvicorn.config import LOGGING_CONFIG

from audio_extract_common import ids
from audio_extract_common.jsonlog import LogFormat

tenant: ContextVar[str] = ContextVar("tenant", default="-")
batch_id: ContextVar[str | None] = ContextVar("batch_id", default=None)
job_id: ContextVar[str | None] = ContextVar("job_id", default=None)


def about_job(job: str) -> None:
    """The rest of this request is about that job (and its batch)."""
    job_id.set(job)
    parsed = ids.parse_job_id(job)
    batch_id.set(ids.batch_id(parsed[0]) if parsed else None)


class TenantFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.tenant = tenant.get()
        record.batch_id = batch_id.get()
        record.job_id = job_id.get()
        return True


def log_config(level: str = "INFO", log_format: LogFormat = "text") -> dict[str, Any]:
    """uvicorn's logging configuration, with the tenant in every line and the API's own loggers."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"tenant": {"()": TenantFilter}}
    if log_format == "json":
        json_formatter = {"()": "audio_extract_common.jsonlog.JsonFormatter"}
        config["formatters"] = {"default": json_formatter, "access": dict(json_formatter)}
    else:
        config["formatters"]["default"]["fmt"] = "%(levelprefix)s %(name)s tenant=%(tenant)s: %(message)s"
        config["formatters"]["access"]["fmt"] = (
            '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s tenant=%(tenant)s'
        )
    for handler in config["handlers"].values():
        handler["filters"] = ["tenant"]
    config["loggers"]["audio_extract_api"] = {"handlers": ["default"], "level": level, "propagate": False}
    return config
