"""Public ids and the Kubernetes object names they map to: the only place this mapping lives.

A batch has a 14-hex-digit *key*. Its public id is ``batch_<key>00`` and the id of its job at
index ``i`` (0-based) is ``job_<key><i+1 as 2 hex digits>``, so a job id names its batch without
any lookup. Kubernetes names cannot hold ``_``: the ExtractionBatch created by the API is named
``batch-<key>00`` and the Job for a job ``job-<key><ii>``.

Batches applied with ``kubectl`` carry any name; their key is taken from the object's uid and
recorded in the ``audioextract.io/key`` label by the operator, which is how the API finds them.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

KEY_HEX = 14
MAX_JOBS = 10

JOB_ID_RE = re.compile(r"^job_[0-9a-z]{16}$")
"""What the API accepts as a job id (the contract's own example is not hex)."""
BATCH_ID_RE = re.compile(r"^batch_[0-9a-z]{16}$")
UPLOAD_ID_RE = re.compile(r"^upl_[0-9a-f]{16}$")
"""An upload id (``upl_`` + 16 lowercase hex), as POST /v1/uploads makes them."""
_KEY_NAME_RE = re.compile(rf"^batch-([0-9a-f]{{{KEY_HEX}}})00$")
_JOB_ID_HEX_RE = re.compile(rf"^job_([0-9a-f]{{{KEY_HEX}}})([0-9a-f]{{2}})$")

KEY_LABEL = "audioextract.io/key"
BATCH_LABEL = "audioextract.io/batch"
JOB_LABEL = "audioextract.io/job-id"
TENANT_LABEL = "audioextract.io/tenant"
"""The tenant a batch belongs to (docs/contract.md §7): set by the API, or by whoever applies a manifest."""
TENANT_RE = re.compile(r"^(?=.{1,63}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
"""A tenant name: a non-empty label value, so that it can be the tenant label's value."""


def new_key() -> str:
    return secrets.token_hex(KEY_HEX // 2)


def key_from_uid(uid: str) -> str:
    return uid.replace("-", "").lower()[:KEY_HEX]


def batch_key(name: str, uid: str) -> str:
    """The key of an ExtractionBatch: from its name when the API named it, else from its uid."""
    m = _KEY_NAME_RE.match(name)
    return m.group(1) if m else key_from_uid(uid)


def derived_batch_key(batch: Mapping[str, Any]) -> str:
    """The key of an ExtractionBatch object, made from its name and uid (``batch_key``): what the
    operator acts on and records in ``KEY_LABEL``, whatever label the object came with."""
    meta = batch["metadata"]
    return batch_key(meta["name"], meta.get("uid", ""))


def recorded_batch_key(batch: Mapping[str, Any]) -> str:
    """The key an ExtractionBatch object carries in ``KEY_LABEL`` (the label the API finds it by),
    else ``derived_batch_key``: the key of a kubectl-applied batch the operator has not seen yet."""
    return (batch["metadata"].get("labels") or {}).get(KEY_LABEL) or derived_batch_key(batch)


def batch_id(key: str) -> str:
    return f"batch_{key}00"


def batch_object_name(key: str) -> str:
    return f"batch-{key}00"


def job_id(key: str, index: int) -> str:
    if not 0 <= index < MAX_JOBS:
        raise ValueError(f"job index out of range: {index}")
    return f"job_{key}{index + 1:02x}"


def job_object_name(job_id_: str) -> str:
    """The Kubernetes Job running a job."""
    return job_id_.replace("_", "-")


def parse_job_id(job_id_: str) -> tuple[str, int] | None:
    """``(key, index)`` of a job id this service issued, or None for a well-formed but foreign id."""
    m = _JOB_ID_HEX_RE.match(job_id_)
    if not m:
        return None
    index = int(m.group(2), 16) - 1
    if not 0 <= index < MAX_JOBS:
        return None
    return m.group(1), index


def parse_batch_id(batch_id_: str) -> str | None:
    """The key of a batch id this service issued, or None."""
    m = re.match(rf"^batch_([0-9a-f]{{{KEY_HEX}}})00$", batch_id_)
    return m.group(1) if m else None
