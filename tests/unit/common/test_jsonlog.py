"""``jsonlog.JsonFormatter``: one JSON object per line, the subject's fields only when known."""

from __future__ import annotations

import json
import logging
import sys

from audio_extract_common.jsonlog import JsonFormatter


def record(msg: str, *args: object, **attrs: object) -> logging.LogRecord:
    r = logging.LogRecord("audio_extract_x", logging.WARNING, __file__, 1, msg, args, None)
    for k, v in attrs.items():
        setattr(r, k, v)
    return r


def test_a_line_about_a_job_has_its_fields() -> None:
    line = JsonFormatter().format(
        record("job %s failed", "job_1", tenant="acme", batch_id="batch_0123456789abcd00", job_id="job_1")
    )
    assert "\n" not in line
    obj = json.loads(line)
    assert (
        obj["message"] == "job job_1 failed"
        and obj["level"] == "WARNING"
        and obj["logger"] == "audio_extract_x"
    )
    assert (obj["tenant"], obj["batchId"], obj["jobId"]) == ("acme", "batch_0123456789abcd00", "job_1")
    assert obj["time"].endswith("Z") and "T" in obj["time"]


def test_unknown_subject_fields_are_left_out_and_tracebacks_kept() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        r = record("failed", tenant="-", batch_id=None)
        r.exc_info = sys.exc_info()
    obj = json.loads(JsonFormatter().format(r))
    assert {"tenant", "batchId", "jobId"}.isdisjoint(obj)
    assert "ValueError: bad" in obj["exception"]
