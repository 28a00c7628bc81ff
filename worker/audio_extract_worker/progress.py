"""Progress reports to the operator: POST ``ProgressReport`` JSON with a bearer token.

Best effort by design: a background thread sends the latest report at most once per
interval, so a slow or failing endpoint never slows or fails the job; intermediate reports
are coalesced (only the newest matters). The endpoint is the operator's own, from settings,
not a user URL, so it does not go through the address guard.

The thread posts with the standard library's ``http.client``, which it imports itself: it starts
just before the first ffprobe, and importing httpx there would hold the interpreter and the import
locks while the job starts. One kept-alive connection, no proxies, no redirects, the system's CAs
for https.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from audio_extract_common.batch_status import InputFile, Step
from audio_extract_common.results import ProgressReport

if TYPE_CHECKING:
    import http.client

log = logging.getLogger(__name__)


class _Poster:
    """POSTs to one URL over one kept-alive connection, opened again after any failure."""

    def __init__(self, url: str, timeout: float) -> None:
        import http.client

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the progress URL must be an http:// or https:// URL")
        self._connection_class = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        self._host, self._port = parts.hostname, parts.port
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._timeout = timeout
        self._connection: http.client.HTTPConnection | None = None

    def post(self, body: bytes, headers: dict[str, str]) -> int:
        """The response's status; raises ``OSError`` or ``http.client.HTTPException``."""
        import http.client

        reused = self._connection is not None
        try:
            return self._post(body, headers)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
            return self._post(body, headers)  # the server had closed the idle connection

    def _post(self, body: bytes, headers: dict[str, str]) -> int:
        if self._connection is None:
            self._connection = self._connection_class(self._host, self._port, timeout=self._timeout)
        try:
            self._connection.request("POST", self._target, body=body, headers=headers)
            response = self._connection.getresponse()
            response.read()
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class ProgressReporter:
    def __init__(
        self, job_id: str, url: str | None, token: str | None, interval: float = 1.0, timeout: float = 2.0
    ) -> None:
        self.job_id = job_id
        self.url = url
        self.interval = interval
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = timeout
        self._lock = threading.Condition()
        self._pending: ProgressReport | None = None
        self._last: tuple[Step, int] | None = None
        self._closed = False
        self.sent = 0
        self.failed = 0
        self._input: InputFile | None = None
        self._thread: threading.Thread | None = None
        if url:
            self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
            self._thread.start()

    def report(
        self, step: Step, percent: float, eta: int | None = None, input_file: InputFile | None = None
    ) -> None:
        """Queue the newest state; returns at once."""
        if not self.url:
            return
        if input_file is not None:
            self._input = input_file
        value = max(0, min(100, int(percent)))
        if self._last == (step, value):
            return
        self._last = (step, value)
        report = ProgressReport(
            jobId=self.job_id, step=step, progress=value, estimatedTimeRemaining=eta, inputFile=self._input
        )
        with self._lock:
            self._pending = report
            self._lock.notify()

    def close(self, flush_timeout: float = 2.0) -> None:
        """Send what is pending (bounded wait), then stop."""
        if self._thread is None:
            return
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join(flush_timeout)

    def _run(self) -> None:
        try:
            poster = _Poster(self.url or "", self._timeout)
        except ValueError as e:
            log.warning("progress reports are off: %s", e)
            return
        next_at = 0.0
        try:
            while True:
                with self._lock:
                    while self._pending is None and not self._closed:
                        self._lock.wait()
                    if self._pending is None:
                        return
                    wait = next_at - time.monotonic()
                    if wait > 0 and not self._closed:
                        self._lock.wait(wait)  # coalesce: newer reports replace this one
                        continue
                    report, self._pending = self._pending, None
                next_at = time.monotonic() + self.interval
                self._send(poster, report)
        finally:
            poster.close()

    def _send(self, poster: _Poster, report: ProgressReport) -> None:
        import http.client

        try:
            status = poster.post(
                report.model_dump_json(exclude_none=True).encode(),
                {**self._headers, "Content-Type": "application/json"},
            )
            if 200 <= status < 300:
                self.sent += 1
                return
            log.warning("progress endpoint answered %s", status)
        except (OSError, http.client.HTTPException) as e:
            log.warning("progress report failed: %s", e)
        self.failed += 1
