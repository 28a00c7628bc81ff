"""Where a request's time went, for its ``Server-Timing`` header: the app's whole share and the
part of it spent waiting on the Kubernetes API, so a slow answer says whether the API server or
the app itself was slow.

One ``Spans`` per request, in a context variable the edge sets; the Kubernetes door adds its
waits through ``waiting_on_kube``. Outside a request (the queue's watch, start-up) nothing is kept.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class Spans:
    started_at: float = field(default_factory=time.perf_counter)
    kube: float = 0.0

    def header(self) -> tuple[bytes, bytes]:
        app = time.perf_counter() - self.started_at
        return b"server-timing", f"app;dur={app * 1000:.1f}, kube;dur={self.kube * 1000:.1f}".encode()


_current: ContextVar[Spans | None] = ContextVar("audio_extract_api_spans", default=None)


def start() -> Spans:
    spans = Spans()
    _current.set(spans)
    return spans


@contextmanager
def waiting_on_kube() -> Iterator[None]:
    """Counts the block's time as the request's time in the Kubernetes API (when in a request)."""
    spans = _current.get()
    started_at = time.perf_counter()
    try:
        yield
    finally:
        if spans is not None:
            spans.kube += time.perf_counter() - started_at
