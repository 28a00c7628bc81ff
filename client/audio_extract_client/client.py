"""The synchronous client (``AsyncClient`` in ``aio`` is the same on asyncio/trio)."""

from __future__ import annotations

import logging
import mimetypes
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from audio_extract_common.api_models import (
    BatchAccepted,
    BatchView,
    ExtractAccepted,
    JobView,
    UploadResult,
)
from audio_extract_common.retry_after import retry_after_seconds

from . import calls, downloads, errors
from .calls import Call, JobLike
from .retry import RETRY_STATUSES, RetryPolicy

log = logging.getLogger("audio_extract_client")

M = TypeVar("M", bound=BaseModel)
Progress = Callable[[int, int | None], None]
"""Called with (bytes done, bytes in all when known) as a transfer goes."""

CHUNK = 256 * 1024
TERMINAL = frozenset({"completed", "failed", "cancelled"})


def _file_chunks(path: Path, on_progress: Progress | None, total: int) -> Iterator[bytes]:
    done = 0
    with path.open("rb") as f:
        while data := f.read(CHUNK):
            done += len(data)
            yield data
            if on_progress:
                on_progress(done, total)


class Client:
    """A client of one audio-extract API.

    ``base_url`` is where the API is served (``http://host:30080``, or with a path prefix before
    ``/v1``); ``api_key`` is sent as ``X-API-Key``. Answers 429 and 503 are retried after their
    ``Retry-After`` within ``retry``'s bounds; every error answer is raised as the typed exception of
    its code (``audio_extract_client.errors``). Use it as a context manager, or ``close()`` it.

    >>> with Client("http://localhost:30080", "axk_...") as api:
    ...     accepted = api.submit_batch([{"source": {"type": "url", "url": "https://example.com/a.mp4"},
    ...                                   "output": {"format": "mp3"}}])
    ...     api.wait_batch(accepted.batchId)
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = http or httpx.Client(timeout=timeout)
        self._http.base_url = httpx.URL(base_url.rstrip("/"))
        self._http.headers["X-API-Key"] = api_key
        self._uploads = calls.UploadRoute()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- sending -----------------------------------------------------------------------------

    def send(
        self, call: Call[Any], content: Callable[[], Any] | None = None, stream: bool = False
    ) -> httpx.Response:
        """Send ``call``, again after a 429/503 or no answer while ``retry`` allows; return the last
        answer (read unless ``stream``). ``content`` makes a fresh body for each attempt."""
        attempt, waited = 0, 0.0
        while True:
            attempt += 1
            try:
                response = self._http.send(
                    calls.request(self._http, call, content and content()), stream=stream
                )
            except httpx.TransportError as e:
                delay = self.retry.delay(attempt, waited, None) if call.resend_unanswered else None
                if delay is None:
                    raise errors.TransportError(f"{call.method} {call.path}: {e!r}") from e
                log.info("%s %s: no answer (%r); again in %.1f s", call.method, call.path, e, delay)
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                after = retry_after_seconds(response.headers.get("retry-after"))
                delay = self.retry.delay(attempt, waited, after)
                if delay is None:
                    response.read()
                    return response
                response.close()
                log.info("%s %s: %s; again in %.1f s", call.method, call.path, response.status_code, delay)
            self._sleep(delay)
            waited += delay

    def call(self, call: Call[M]) -> M:
        """Send ``call`` and read its answer into the call's model (or raise the typed error)."""
        return calls.parse(call, self.send(call))

    # --- routes ------------------------------------------------------------------------------

    def submit_batch(
        self, jobs: Iterable[JobLike], *, webhook: str | None = None, idempotency_key: str | None = None
    ) -> BatchAccepted:
        """POST /v1/batch: 1 to 10 jobs (``ExtractionJob`` models or dicts of the same shape).

        One ``Idempotency-Key`` (made here unless given) is sent on every retry, so the API creates
        one batch however often the request had to be sent."""
        return self.call(calls.submit_batch(jobs, webhook, idempotency_key))

    def extract(self, job: JobLike, *, idempotency_key: str | None = None) -> ExtractAccepted:
        """POST /v1/extract: one job."""
        return self.call(calls.extract(job, idempotency_key))

    def status(self, job_id: str) -> JobView:
        """GET /v1/status/{jobId}."""
        return self.call(calls.status(job_id))

    def batch(self, batch_id: str) -> BatchView:
        """GET /v1/batch/{batchId}: the batch and each job's status."""
        return self.call(calls.batch(batch_id))

    def cancel_job(self, job_id: str) -> JobView:
        """POST /v1/jobs/{jobId}/cancel (a finished job is left as it is)."""
        return self.call(calls.cancel_job(job_id))

    def cancel_batch(self, batch_id: str) -> BatchView:
        """POST /v1/batch/{batchId}/cancel: every unfinished job of the batch."""
        return self.call(calls.cancel_batch(batch_id))

    def upload(
        self, path: str | Path, *, on_progress: Progress | None = None, direct: bool | None = None
    ) -> UploadResult:
        """POST /v1/uploads: the file's bytes, streamed from the file (never read whole). Use the
        result's ``fileId`` as ``{"type": "upload", "file": fileId}``.

        ``direct=None`` (the default) asks for a presigned URL first (docs/contract.md §7: an object
        store) and PUTs the bytes there; a service that cannot presign (a volume store) answers 400
        ``INVALID_REQUEST``, and then the bytes are streamed to the API, by this call and every later
        one of this client without asking again. ``direct=True``: only the presigned PUT (that 400
        is raised); ``direct=False``: only through the API. A service that predates the JSON form
        would store the JSON request itself as an upload: use ``direct=False`` with one."""
        path = Path(path)
        size = path.stat().st_size
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if self._uploads.asks_direct(direct, size):
            try:
                ticket = self.call(calls.direct_upload(path.name, size, content_type))
            except errors.ApiError as e:
                if not self._uploads.streams_after(direct, e):
                    raise
            else:
                with httpx.Client(timeout=self._http.timeout) as store:
                    try:
                        reply = store.request(
                            ticket.method,
                            ticket.uploadUrl,
                            headers=ticket.headers,
                            content=_file_chunks(path, on_progress, size),
                        )
                    except httpx.TransportError as e:
                        raise errors.TransportError(f"{ticket.method} to the store: {e!r}") from e
                    calls.check_store(reply)
                return UploadResult(fileId=ticket.fileId, size=size)
        call = calls.upload(size, content_type)
        return calls.parse(call, self.send(call, lambda: _file_chunks(path, on_progress, size)))

    def download(self, job_id: str, dest: str | Path, *, on_progress: Progress | None = None) -> Path:
        """GET /v1/download/{jobId} into ``dest`` (a file path, or an existing directory: the output's
        own file name inside it). The bytes go to ``<dest>.part`` first; a cut-off transfer resumes
        with a ``Range`` request, here on a retry and in a later call after a crash."""
        dest = Path(dest)
        if dest.is_dir():
            view = self.status(job_id)
            if not view.outputFile or not view.outputFile.filename:
                # Not completed (or failed): the download's own answer says which, as a typed error.
                self.call(calls.download(job_id))
            assert view.outputFile and view.outputFile.filename
            dest = dest / Path(view.outputFile.filename).name
        part = downloads.part_path(dest)
        attempt, waited = 0, 0.0
        while True:
            attempt += 1
            have = part.stat().st_size if part.exists() else 0
            problem: Exception | None = None
            try:
                if self._download_once(job_id, part, have, on_progress):
                    break
            except httpx.TransportError as e:
                problem = e
            delay = self.retry.delay(attempt, waited, None)
            if delay is None:
                raise errors.TransportError(f"download {job_id}: {problem!r} (incomplete)") from problem
            log.info("download %s: cut off (%r); resuming in %.1f s", job_id, problem, delay)
            self._sleep(delay)
            waited += delay
        part.replace(dest)
        return dest

    def _download_once(self, job_id: str, part: Path, have: int, on_progress: Progress | None) -> bool:
        """One request; True when the ``.part`` is whole."""
        response = self.send(calls.download(job_id, have), stream=True)
        try:
            if response.status_code != 416 and (not response.is_success or response.status_code == 202):
                response.read()
                calls.check(response)
            plan = downloads.resume(
                response.status_code,
                response.headers.get("content-range"),
                response.headers.get("content-length"),
                have,
            )
            if response.status_code == 416:
                if not plan.done:
                    part.unlink()  # longer than the file: start over
                return plan.done
            total = plan.total
            with part.open("r+b" if plan.offset else "wb") as f:
                f.seek(plan.offset)
                f.truncate()
                done = plan.offset
                for data in response.iter_bytes():
                    f.write(data)
                    done += len(data)
                    if on_progress:
                        on_progress(done, total)
            return total is None or done == total
        finally:
            response.close()

    # --- following ---------------------------------------------------------------------------

    def wait_batch(
        self,
        batch_id: str,
        *,
        interval: float = 1.0,
        timeout: float | None = None,
        on_update: Callable[[BatchView], None] | None = None,
    ) -> BatchView:
        """Poll GET /v1/batch/{batchId} until every job is terminal; ``on_update`` sees each view."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            view = self.batch(batch_id)
            if on_update:
                on_update(view)
            if all(j.status in TERMINAL for j in view.jobs):
                return view
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch_id} not finished after {timeout} s")
            self._sleep(interval)
