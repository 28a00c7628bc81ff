"""Log lines as JSON objects, one per line, for a log system to index: the API, the operator and the
worker use it when their ``log_format`` setting is ``json`` (the chart's default; ``text`` in
``make dev``, for people).

Every line has ``time`` (ISO 8601 UTC, milliseconds), ``level``, ``logger`` and ``message``; a line
about a batch or a job adds ``tenant``, ``batchId`` and ``jobId`` as far as they are known, from
the record's ``tenant``, ``batch_id`` and ``job_id`` attributes, which each process's log filter
sets (``-`` or empty: not about one); ``exception`` holds a traceback.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["json", "text"]

CONTEXT = (("tenant", "tenant"), ("batch_id", "batchId"), ("job_id", "jobId"))
"""(record attribute, JSON key) of the fields that say what a line is about."""
NONE = "-"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for attr, key in CONTEXT:
            value = getattr(record, attr, None)
            if value and value != NONE:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)
