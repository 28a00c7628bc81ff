"""The operator's log lines name the tenant of the batch they are about (docs/contract.md §7).

Two kinds of lines are about a batch: kopf's per-object lines (a handler failed, a retry, a
patch conflict), which carry kopf's reference to the object (``k8s_ref``: kind, namespace,
name) but none of its labels, and the operator's own lines, written deep inside a step that
was started for one batch. So a filter on the log handler fills ``tenant`` in every record:

1. a ``tenant`` the call site passed (``extra={"tenant": ...}``);
2. for kopf's lines, the tenant label of that batch (or of the batch owning that Job) as the
   registry last saw it, the one place that already holds a record of every batch;
3. otherwise the tenant of the batch the current task works on (``about``), set where a
   step for one batch starts: kopf's handlers, each webhook tick, each progress flush, each
   admission and each batch of a retention pass;
4. ``-``: a line about no single batch (a listing failed, a lease was lost).

Tenants are few and their names are label values, so a line never grows by more than 63
characters and a log system can index the field.

The same way, ``batch_id`` and ``job_id`` name the batch and the job a line is about (public ids,
``batch_…``/``job_…``): from the call site's ``extra``, from kopf's reference (a Job's name is its
job id; a batch's id comes from its key), or from ``about``. A job id names its batch, so a line
about a job names both. The JSON format (``log_format=json``) shows all three as fields; the text
format shows the tenant only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

from audio_extract_common import ids
from audio_extract_common.batch_resource import KIND
from audio_extract_common.jsonlog import JsonFormatter, LogFormat

NONE = "-"
FORMAT = "%(asctime)s %(levelname)s %(name)s tenant=%(tenant)s: %(message)s"

tenant: ContextVar[str] = ContextVar("tenant", default=NONE)
subject: ContextVar[tuple[str | None, str | None]] = ContextVar("subject", default=(None, None))
"""(batch id, job id) the current task works on."""


class TenantBook(Protocol):
    def tenant_of(self, kind: str | None, namespace: str | None, name: str | None) -> str | None: ...

    def batch_id_of(self, namespace: str | None, name: str | None) -> str | None: ...


def tenant_of(body: Mapping[str, Any]) -> str:
    """The tenant label of a batch (``-`` for a batch applied without one)."""
    return ((body.get("metadata") or {}).get("labels") or {}).get(ids.TENANT_LABEL) or NONE


def batch_id_of(body: Mapping[str, Any]) -> str | None:
    """The public id of a batch object."""
    meta = body.get("metadata") or {}
    if not meta.get("name") or not meta.get("uid"):
        return None
    return ids.batch_id(ids.derived_batch_key(body))


def job_id_of_job(name: str | None) -> str | None:
    """The public id of the job a Job (by name) runs, if it is one of ours."""
    job_id = "job_" + name.removeprefix("job-") if name and name.startswith("job-") else None
    return job_id if job_id and ids.parse_job_id(job_id) is not None else None


def batch_of_job(job_id: str | None) -> str | None:
    parsed = ids.parse_job_id(job_id) if job_id else None
    return ids.batch_id(parsed[0]) if parsed else None


def set_about(name: str | None, batch: str | None = None, job: str | None = None) -> None:
    """For the rest of this task (and tasks it starts): lines are about that tenant, batch, job."""
    tenant.set(name or NONE)
    subject.set((batch or batch_of_job(job), job))


@contextmanager
def about(name: str | None, batch: str | None = None, job: str | None = None) -> Iterator[None]:
    """Lines logged inside (and in tasks started inside) are about a batch of tenant ``name``
    (and that batch, that job, by public id, when given; a job names its batch)."""
    token = tenant.set(name or NONE)
    about_token = subject.set((batch or batch_of_job(job), job))
    try:
        yield
    finally:
        subject.reset(about_token)
        tenant.reset(token)


class TenantFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.book: TenantBook | None = None
        """Set once the registry exists (kopf's start-up); kopf logs nothing per object before."""

    def filter(self, record: logging.LogRecord) -> bool:
        ref = getattr(record, "k8s_ref", None)
        ref = ref if isinstance(ref, Mapping) else None
        if not getattr(record, "tenant", None):
            found = None
            if ref is not None and self.book is not None:
                found = self.book.tenant_of(ref.get("kind"), ref.get("namespace"), ref.get("name"))
            record.tenant = found or tenant.get()
        if not getattr(record, "batch_id", None) and not getattr(record, "job_id", None):
            batch, job = subject.get()
            if ref is not None:
                batch, job = self._ids(ref)
            record.batch_id, record.job_id = batch or batch_of_job(job), job
        elif not getattr(record, "batch_id", None):
            record.batch_id = batch_of_job(getattr(record, "job_id", None))
        return True

    def _ids(self, ref: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """(batch id, job id) of kopf's object: a Job names its job; a batch needs its uid, which
        the registry holds."""
        if ref.get("kind") == "Job":
            job = job_id_of_job(ref.get("name"))
            return batch_of_job(job), job
        if self.book is not None and ref.get("kind") == KIND:
            return self.book.batch_id_of(ref.get("namespace"), ref.get("name")), None
        return None, None


FILTER = TenantFilter()
"""The process's one filter: ``configure`` puts it on the handler, start-up gives it the registry."""


def configure(level: str, kopf_level: str, log_format: LogFormat = "text") -> None:
    logging.basicConfig(level=level, format=FORMAT)
    for handler in logging.getLogger().handlers:
        handler.addFilter(FILTER)
        if log_format == "json":
            handler.setFormatter(JsonFormatter())
    logging.getLogger("kopf").setLevel(kopf_level)
