"""The asynchronous client: ``Client``'s methods, awaited (asyncio or trio, through httpx and anyio)."""

from __future__ import annotations

import mimetypes
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
from pydantic import BaseModel

from audio_extract_common.api_models import BatchAccepted, BatchView, ExtractAccepted, JobView, UploadResult
from audio_extract_common.retry_after import retry_after_seconds

from . import calls, downloads, errors
from .calls import Call, JobLike
from .client import CHUNK, TERMINAL, Progress, log
from .retry import RETRY_STATUSES, RetryPolicy

M = TypeVar("M", bound=BaseModel)


async def _file_chunks(path: Path, on_progress: Progress | None, total: int) -> AsyncIterator[bytes]:
    done = 0
    async with await anyio.open_file(path, "rb") as f:
        while data := await f.read(CHUNK):
            done += len(data)
            yield data
            if on_progress:
                on_progress(done, total)


class AsyncClient:
    """``Client`` for async code: the same arguments and methods, each a coroutine.

    >>> async with AsyncClient("http://localhost:30080", "axk_...") as api:
    ...     view = await api.status("job_0123456789abcdef")
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._http.base_url = httpx.URL(base_url.rstrip("/"))
        self._http.headers["X-API-Key"] = api_key
        self._uploads = calls.UploadRoute()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(
        self, call: Call[Any], content: Callable[[], Any] | None = None, stream: bool = False
    ) -> httpx.Response:
        """As ``Client.send``."""
        attempt, waited = 0, 0.0
        while True:
            attempt += 1
            try:
                request = calls.request(self._http, call, content and content())
                response = await self._http.send(request, stream=stream)
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
                    await response.aread()
                    return response
                await response.aclose()
                log.info("%s %s: %s; again in %.1f s", call.method, call.path, response.status_code, delay)
            await self._sleep(delay)
            waited += delay

    async def call(self, call: Call[M]) -> M:
        return calls.parse(call, await self.send(call))

    async def submit_batch(
        self, jobs: Iterable[JobLike], *, webhook: str | None = None, idempotency_key: str | None = None
    ) -> BatchAccepted:
        """POST /v1/batch, one Idempotency-Key for every retry (see ``Client.submit_batch``)."""
        return await self.call(calls.submit_batch(jobs, webhook, idempotency_key))

    async def extract(self, job: JobLike, *, idempotency_key: str | None = None) -> ExtractAccepted:
        return await self.call(calls.extract(job, idempotency_key))

    async def status(self, job_id: str) -> JobView:
        return await self.call(calls.status(job_id))

    async def batch(self, batch_id: str) -> BatchView:
        return await self.call(calls.batch(batch_id))

    async def cancel_job(self, job_id: str) -> JobView:
        return await self.call(calls.cancel_job(job_id))

    async def cancel_batch(self, batch_id: str) -> BatchView:
        return await self.call(calls.cancel_batch(batch_id))

    async def upload(
        self, path: str | Path, *, on_progress: Progress | None = None, direct: bool | None = None
    ) -> UploadResult:
        """As ``Client.upload``: by default straight to an object store, else streamed."""
        path = Path(path)
        size = path.stat().st_size
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if self._uploads.asks_direct(direct, size):
            try:
                ticket = await self.call(calls.direct_upload(path.name, size, content_type))
            except errors.ApiError as e:
                if not self._uploads.streams_after(direct, e):
                    raise
            else:
                async with httpx.AsyncClient(timeout=self._http.timeout) as store:
                    try:
                        reply = await store.request(
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
        return calls.parse(call, await self.send(call, lambda: _file_chunks(path, on_progress, size)))

    async def download(self, job_id: str, dest: str | Path, *, on_progress: Progress | None = None) -> Path:
        """As ``Client.download``: into ``<dest>.part``, resumed with ``Range`` after a cut-off."""
        dest = Path(dest)
        if dest.is_dir():
            view = await self.status(job_id)
            if not view.outputFile or not view.outputFile.filename:
                await self.call(calls.download(job_id))
            assert view.outputFile and view.outputFile.filename
            dest = dest / Path(view.outputFile.filename).name
        part = downloads.part_path(dest)
        attempt, waited = 0, 0.0
        while True:
            attempt += 1
            have = part.stat().st_size if part.exists() else 0
            problem: Exception | None = None
            try:
                if await self._download_once(job_id, part, have, on_progress):
                    break
            except httpx.TransportError as e:
                problem = e
            delay = self.retry.delay(attempt, waited, None)
            if delay is None:
                raise errors.TransportError(f"download {job_id}: {problem!r} (incomplete)") from problem
            log.info("download %s: cut off (%r); resuming in %.1f s", job_id, problem, delay)
            await self._sleep(delay)
            waited += delay
        part.replace(dest)
        return dest

    async def _download_once(self, job_id: str, part: Path, have: int, on_progress: Progress | None) -> bool:
        response = await self.send(calls.download(job_id, have), stream=True)
        try:
            if response.status_code != 416 and (not response.is_success or response.status_code == 202):
                await response.aread()
                calls.check(response)
            plan = downloads.resume(
                response.status_code,
                response.headers.get("content-range"),
                response.headers.get("content-length"),
                have,
            )
            if response.status_code == 416:
                if not plan.done:
                    part.unlink()
                return plan.done
            done = plan.offset
            async with await anyio.open_file(part, "r+b" if plan.offset else "wb") as f:
                await f.seek(plan.offset)
                await f.truncate()
                async for data in response.aiter_bytes():
                    await f.write(data)
                    done += len(data)
                    if on_progress:
                        on_progress(done, plan.total)
            return plan.total is None or done == plan.total
        finally:
            await response.aclose()

    async def wait_batch(
        self,
        batch_id: str,
        *,
        interval: float = 1.0,
        timeout: float | None = None,
        on_update: Callable[[BatchView], None] | None = None,
    ) -> BatchView:
        """As ``Client.wait_batch``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            view = await self.batch(batch_id)
            if on_update:
                on_update(view)
            if all(j.status in TERMINAL for j in view.jobs):
                return view
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch_id} not finished after {timeout} s")
            await self._sleep(interval)
