"""Request bodies: JSON parsing with limits, validation mapped to the contract's error codes.

Validation is all-or-nothing and every problem is reported: ``details`` is a list of
``{field, message}`` naming the failing field the way clients write it (``jobs[3].output.bitrate``).
The error code is the most general one among the problems: unknown fields and structural
problems → INVALID_REQUEST, then INVALID_SOURCE, then INVALID_OUTPUT.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from audio_extract_common.api_models import BatchRequest, DirectUploadRequest
from audio_extract_common.batch_spec import ExtractionJob
from audio_extract_common.ids import MAX_JOBS

from .errors import ApiError, InvalidOutput, InvalidRequest, InvalidSource, TooManyJobs

M = TypeVar("M", bound=BaseModel)


def field_path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _code_of(loc: Sequence[str | int], error_type: str) -> type[ApiError]:
    if error_type == "extra_forbidden":
        return InvalidRequest
    # The job object sits at the top (extract) or under jobs[i] (batch).
    rest = list(loc)
    if rest[:1] == ["jobs"]:
        rest = rest[2:] if len(rest) > 1 and isinstance(rest[1], int) else []
    first = rest[0] if rest and isinstance(rest[0], str) else None
    if first == "source":
        return InvalidSource
    if first == "output":
        return InvalidOutput
    return InvalidRequest


_PRECEDENCE = (InvalidRequest, InvalidSource, InvalidOutput)


def _message(msg: str) -> str:
    return msg.removeprefix("Value error, ")


def _pinpoint(loc: tuple[str | int, ...], msg: str) -> tuple[str | int, ...]:
    """Cross-field rules are reported by a model validator at the object; name the field."""
    if loc and loc[-1] == "output":
        for name in ("sampleRate", "bitrate"):  # the per-format checks (formats.check_*)
            if name in msg:
                return (*loc, name)
    if loc and loc[-1] == "source":
        for name in ("url", "file"):
            if msg.startswith(f"Value error, {name} is required"):
                return (*loc, name)
    return loc


def raise_validation(errors: list[dict[str, Any]], prefix: Sequence[str | int] = ()) -> None:
    details: list[dict[str, str]] = []
    codes: set[type[ApiError]] = set()
    for e in errors:
        loc = _pinpoint((*prefix, *e["loc"]), e["msg"])
        codes.add(_code_of(loc, e["type"]))
        details.append({"field": field_path(loc) or "body", "message": _message(e["msg"])})
    code = next(c for c in _PRECEDENCE if c in codes)
    raise code(f"{len(details)} invalid field{'s' if len(details) != 1 else ''}", details)


def parse_json(raw: bytes, max_depth: int) -> Any:
    """Parse a body; any defect (syntax, encoding, nesting, huge numbers) is INVALID_REQUEST."""
    if not raw.strip():
        raise InvalidRequest("Request body is empty")
    try:
        value = json.loads(raw)
    except RecursionError:
        raise InvalidRequest("JSON is nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        raise InvalidRequest("Malformed JSON", str(e)[:200]) from None
    if _depth_exceeds(value, max_depth):
        raise InvalidRequest(f"JSON is nested more than {max_depth} levels deep")
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict | list):
            if d > limit:
                return True
            stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return False


def _validated(model: type[M], body: Any) -> M:
    """``body`` as ``model``, or the API's 400 for the first problem found."""
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as e:
        raise_validation(e.errors(include_url=False))
    raise AssertionError("unreachable")


def parse_batch(body: Any) -> BatchRequest:
    jobs = body.get("jobs") if isinstance(body, dict) else None
    if isinstance(jobs, list) and len(jobs) > MAX_JOBS:
        raise TooManyJobs(
            f"A batch holds at most {MAX_JOBS} jobs, got {len(jobs)}",
            [{"field": "jobs", "message": f"at most {MAX_JOBS} jobs"}],
        )
    return _validated(BatchRequest, body)


def parse_job(body: Any) -> ExtractionJob:
    return _validated(ExtractionJob, body)


def parse_direct_upload(body: Any) -> DirectUploadRequest:
    return _validated(DirectUploadRequest, body)


def canonical_hash(body: Any) -> str:
    """Hash of a request body independent of key order and whitespace (for Idempotency-Key)."""
    import hashlib

    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
