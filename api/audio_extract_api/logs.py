"""The API's log lines carry the tenant of the request they belong to (docs/contract.md §7).

The caller's tenant is put in a context variable once the key is known (``deps.caller``); a
filter on the log handlers copies it into every record as ``tenant`` (``-`` before or without
authentication), so the process's own lines and uvicorn's access lines name it without every
call site passing it along. Each request runs in its own task, whose context no other sees.
"""

from __future__ import annotations

import copy
import logging
from contextvars import ContextVar
from typing import Any

from uvicorn.config import LOGGING_CONFIG

tenant: ContextVar[str] = ContextVar("tenant", default="-")


class TenantFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.tenant = tenant.get()
        return True


def log_config(level: str = "INFO") -> dict[str, Any]:
    """uvicorn's logging configuration, with the tenant in every line and the API's own loggers."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"tenant": {"()": TenantFilter}}
    config["formatters"]["default"]["fmt"] = "%(levelprefix)s %(name)s tenant=%(tenant)s: %(message)s"
    config["formatters"]["access"]["fmt"] = (
        '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s tenant=%(tenant)s'
    )
    for handler in config["handlers"].values():
        handler["filters"] = ["tenant"]
    config["loggers"]["audio_extract_api"] = {"handlers": ["default"], "level": level, "propagate": False}
    return config
