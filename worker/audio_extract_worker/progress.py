"""Progress reports to the operator: POST ``ProgressReport`` JSON with a bearer token.

Best effort by design: a background thread sends the latest report at most once per
interval, so a slow or failing endpoint never slows or fails the job; intermediate reports
are coalesced (only the newest matters). The endpoint is the operator's own, from settings,
not a user URL, so it does not go through the address guard.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from audio_extract_common.resource import InputFile, Step
from audio_extract_common.results import ProgressReport

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)


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
        import httpx  # only when reporting is on: keeps the worker's start-up short

        next_at = 0.0
        with httpx.Client(timeout=self._timeout, trust_env=False, follow_redirects=False) as client:
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
                self._send(client, report)

    def _send(self, client: httpx.Client, report: ProgressReport) -> None:
        import httpx

        try:
            response = client.post(
                self.url,  # type: ignore[arg-type]
                content=report.model_dump_json(exclude_none=True),
                headers={**self._headers, "Content-Type": "application/json"},
            )
            if response.is_success:
                self.sent += 1
                return
            log.warning("progress endpoint answered %s", response.status_code)
        except httpx.HTTPError as e:
            log.warning("progress report failed: %s", e)
        self.failed += 1
