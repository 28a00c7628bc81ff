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
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

from audio_extract_common import ids

NONE = "-"
FORMAT = "%(asctime)s %(levelname)s %(name)s tenant=%(tenant)s: %(message)s"

tenant: ContextVar[str] = ContextVar("tenant", default=NONE)


class TenantBook(Protocol):
    def tenant_of(self, kind: str | None, namespace: str | None, name: str | None) -> str | None: ...


def tenant_of(body: Mapping[str, Any]) -> str:
    """The tenant label of a batch (``-`` for a batch applied without one)."""
    return ((body.get("metadata") or {}).get("labels") or {}).get(ids.TENANT_LABEL) or NONE


@contextmanager
def about(name: str | None) -> Iterator[None]:
    """Lines logged inside (and in tasks started inside) are about a batch of tenant ``name``."""
    token = tenant.set(name or NONE)
    try:
        yield
    finally:
        tenant.reset(token)


class TenantFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.book: TenantBook | None = None
        """Set once the registry exists (kopf's start-up); kopf logs nothing per object before."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "tenant", None):
            return True
        found = None
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, Mapping) and self.book is not None:
            found = self.book.tenant_of(ref.get("kind"), ref.get("namespace"), ref.get("name"))
        record.tenant = found or tenant.get()
        return True


FILTER = TenantFilter()
"""The process's one filter: ``configure`` puts it on the handler, start-up gives it the registry."""


def configure(level: str, kopf_level: str) -> None:
    logging.basicConfig(level=level, format=FORMAT)
    for handler in logging.getLogger().handlers:
        handler.addFilter(FILTER)
    logging.getLogger("kopf").setLevel(kopf_level)
