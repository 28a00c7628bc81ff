"""The store of a worker whose outputs and uploads live in an object store: no credentials, only
the URLs the operator presigned for this one job — a PUT for its output object and, for an
uploaded source, a GET for that upload — valid until the Job's deadline.

A presigned URL is a bearer credential for its object. It is never logged (httpx's request line
loses its query here, the worker's own messages name the object key), never written to the
result, and never handed to ffmpeg. The URLs come from the operator, not from a user, so they
do not go through the address guard that source URLs go through (the store may well sit on a
private address); they must still be http(s), and use the worker's connect and read timeouts.

Output: ffmpeg writes into scratch; when the block ends without error the file is sent in one
PUT, streamed from disk with its Content-Length. An object store shows an object only once its
PUT has completed, so a reader never sees part of an output, and a pod that runs twice replaces
the object whole. Connection errors, 5xx, 408 and 429 are retried with backoff; a PUT that still
fails ends the job as a transient failure (the Job's backoffLimit runs it again).

Source: its size comes from a ranged GET (``Range: bytes=0-0``; a presigned URL is signed for
one method, so there is no HEAD), then the bytes are downloaded once into scratch, capped at
``max_source_bytes``. 403 and 404 both mean the upload is not there: a store answers 403 for a
missing key when the signer may not list the bucket.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import BinaryIO, TypeVar

import httpx

from audio_extract_common.batch_status import ErrorCode
from audio_extract_common.formats import FORMATS
from audio_extract_common.retry_after import retry_after_seconds
from audio_extract_common.store import UPLOADS
from audio_extract_common.worker_env import is_http_url

from .errors import OUT_OF_SPACE_ERRNOS, JobFailure, out_of_space
from .settings import WorkerSettings

CHUNK = 1 << 20
USER_AGENT = "audio-extract-worker/0.1"
NOT_THERE = frozenset({403, 404})
T = TypeVar("T")


class _NoQuery(logging.Filter):
    """httpx logs every request's URL at INFO: keep the path (the key), drop the signature."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                a.copy_with(query=None) if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_NoQuery())


@dataclass(frozen=True)
class Retry:
    """Attempts per request to the store, and the waits between them (doubling from ``backoff``,
    at most ``max_delay``; a Retry-After within ``max_delay`` is honoured). Four attempts over
    about 3.5 s ride out a store's restart or a load balancer's brief 503s; longer outages are
    the Job's backoffLimit's."""

    attempts: int = 4
    backoff: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        wait = min(self.max_delay, self.backoff * 2.0 ** (attempt - 1))
        return wait if retry_after is None else min(self.max_delay, max(wait, retry_after))


def retryable(status: int) -> bool:
    return status >= 500 or status == 429 or status == 408


def content_type(key: str) -> str | None:
    """The media type of an output, by its extension (None when it is not one of ours)."""
    suffix = PurePosixPath(key).suffix.lstrip(".").lower()
    for info in FORMATS.values():
        if info.extension == suffix:
            return info.media_type
    return None


CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(?:\d+-\d+|\*)/(\d+)\s*$", re.IGNORECASE)


def total_size(status: int, headers: httpx.Headers) -> int | None:
    """An object's size from the answer to ``Range: bytes=0-0``: 206 (or 416 for an empty object)
    carries it in Content-Range, a 200 from a store that ignores Range in Content-Length."""
    if status in (206, 416):
        match = CONTENT_RANGE_RE.match(headers.get("content-range", ""))
        return int(match.group(1)) if match else None
    if status == 200:
        length = headers.get("content-length", "")
        return int(length) if length.isdigit() else None
    return None


S3_CODE_RE = re.compile(rb"<Code>([A-Za-z0-9._-]{1,64})</Code>")


def store_error(response: httpx.Response) -> str:
    """``HTTP 403 AccessDenied``: the status and the S3 error code, if the body names one (the
    body's Message is not repeated: some stores quote the request in it)."""
    text = f"HTTP {response.status_code}"
    with contextlib.suppress(httpx.HTTPError):
        match = S3_CODE_RE.search(response.read()[:4096])
        if match:
            text += f" {match.group(1).decode()}"
    return text


def _transport_problem(e: httpx.TransportError, url: str) -> str:
    """The exception's kind and text, with any trace of the URL's query removed."""
    text = f"{type(e).__name__}: {e}".strip().rstrip(":")
    query = httpx.URL(url).query.decode(errors="replace")
    if query:
        text = text.replace(query, "…")
    return text


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    while chunk := f.read(CHUNK):
        yield chunk


class PresignedStore:
    """The worker's Store when the operator hands it presigned URLs (see the module's text).

    Use it as a context manager: leaving it closes its connections and removes the source it
    downloaded into scratch."""

    def __init__(
        self,
        *,
        output_url: str,
        output_key: str,
        source_url: str | None,
        scratch_dir: Path,
        max_source_bytes: int,
        connect_timeout: float,
        read_timeout: float,
        retry: Retry = Retry(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        for name, url in (("output", output_url), ("source", source_url)):
            if url is not None and not is_http_url(url):
                raise ValueError(f"the {name} URL must be http:// or https://")
        self.output_key = output_key
        self._output_url = output_url
        self._source_url = source_url
        self._max_source_bytes = max_source_bytes
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._retry = retry
        self._sleep = sleep
        scratch_dir.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix="presigned-", dir=scratch_dir))
        self._source: Path | None = None
        # trust_env: a store behind a proxy, or with a private CA (SSL_CERT_FILE), is set up
        # through the environment like any other client of it
        self._client = httpx.Client(
            timeout=httpx.Timeout(
                connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
            ),
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: WorkerSettings, retry: Retry = Retry()) -> PresignedStore:
        if settings.output_url is None or settings.output_key is None:
            raise ValueError("PresignedStore needs OUTPUT_URL and OUTPUT_KEY")
        return cls(
            output_url=settings.output_url.get_secret_value(),
            output_key=settings.output_key,
            source_url=settings.source_url.get_secret_value() if settings.source_url else None,
            scratch_dir=settings.scratch_dir,
            max_source_bytes=settings.max_source_bytes,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            retry=retry,
        )

    def __enter__(self) -> PresignedStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()
        shutil.rmtree(self._dir, ignore_errors=True)
        self._source = None

    # --- the output --------------------------------------------------------------------------

    def _check_output(self, key: str) -> None:
        if key != self.output_key:
            raise ValueError(f"this job's URL writes {self.output_key!r} only, not {key!r}")

    @contextlib.contextmanager
    def staged(self, key: str) -> Iterator[Path]:
        """A scratch path for ffmpeg to write; PUT to the output object when the block ends
        without error. The scratch file is removed either way."""
        self._check_output(key)
        fd, name = tempfile.mkstemp(dir=self._dir, prefix="output-")
        os.close(fd)
        path = Path(name)
        try:
            yield path
            self._put(key, path)
        finally:
            path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        with self.staged(key) as path, open(path, "wb") as f:
            yield f

    def put_file(self, key: str, source: Path) -> int:
        self._check_output(key)
        return self._put(key, source)

    def _put(self, key: str, path: Path) -> int:
        size = path.stat().st_size
        headers = {"Content-Length": str(size)}
        media_type = content_type(key)
        if media_type:
            headers["Content-Type"] = media_type

        def send() -> httpx.Response:
            with open(path, "rb") as f:
                return self._client.put(self._output_url, content=_chunks(f), headers=headers)

        def failed(problem: str) -> JobFailure:
            # the store refused or could not be reached: nothing about the job is wrong, and the
            # next pod (a new deadline's URL, a store back up) may succeed
            return JobFailure(
                ErrorCode.INTERNAL_ERROR, f"could not store the output {key}: {problem}", transient=True
            )

        response = self._attempts(self._output_url, send, failed)
        if not response.is_success:
            raise failed(store_error(response))
        return size

    def delete_prefix(self, prefix: str) -> None:
        raise NotImplementedError("a worker holding presigned URLs deletes nothing: expiry is the operator's")

    # --- the uploaded source -----------------------------------------------------------------

    def _source_url_for(self, key: str) -> str:
        if not key.startswith(f"{UPLOADS}/"):
            raise ValueError(f"this job's URL reads its uploaded source only, not {key!r}")
        if self._source_url is None:
            raise JobFailure(
                ErrorCode.INTERNAL_ERROR,
                f"the job reads {key} but was given no URL for it (AUDIO_EXTRACT_WORKER_SOURCE_URL)",
                permanent=True,
            )
        return self._source_url

    def _download_failed(self, key: str) -> Callable[[str], JobFailure]:
        def failed(problem: str) -> JobFailure:
            return JobFailure(ErrorCode.DOWNLOAD_FAILED, f"could not read {key} from the store: {problem}")

        return failed

    def size(self, key: str) -> int | None:
        """The source's size, or None if the store does not have it."""
        url = self._source_url_for(key)

        def ask() -> httpx.Response:
            # only the headers are read: a store that ignores Range is not made to send the object
            with self._client.stream(
                "GET", url, headers={"Range": "bytes=0-0", "Accept-Encoding": "identity"}
            ) as r:
                return r

        failed = self._download_failed(key)
        response = self._attempts(url, ask, failed)
        if response.status_code in NOT_THERE:
            return None
        if not (response.is_success or response.status_code == 416):
            raise JobFailure(
                ErrorCode.DOWNLOAD_FAILED,
                f"could not read {key} from the store: HTTP {response.status_code}",
                permanent=not retryable(response.status_code),
            )
        size = total_size(response.status_code, response.headers)
        if size is None:
            raise failed(f"HTTP {response.status_code} without the object's size")
        return size

    def local_path(self, key: str) -> Path:
        """The source, downloaded into scratch on first use."""
        url = self._source_url_for(key)
        if self._source is not None:
            return self._source
        dest = self._dir / "source"
        failed = self._download_failed(key)

        def fetch() -> httpx.Response:
            with self._client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as r:
                if r.is_success:
                    self._save(r, dest)
                return r

        try:
            response = self._attempts(url, fetch, failed)
            if response.status_code in NOT_THERE:
                upload_id = key.removeprefix(f"{UPLOADS}/")
                raise JobFailure(
                    ErrorCode.DOWNLOAD_FAILED,
                    f"upload {upload_id} was not found in the store",
                    permanent=True,
                )
            if not response.is_success:
                raise JobFailure(
                    ErrorCode.DOWNLOAD_FAILED,
                    f"could not read {key} from the store: HTTP {response.status_code}",
                    permanent=not retryable(response.status_code),
                )
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
        self._source = dest
        return dest

    def open(self, key: str) -> BinaryIO:
        return open(self.local_path(key), "rb")

    def _save(self, response: httpx.Response, dest: Path) -> None:
        limit = self._max_source_bytes
        too_large = JobFailure(
            ErrorCode.SOURCE_TOO_LARGE, f"the source is larger than the {limit:,}-byte limit"
        )
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise too_large
        done = 0
        try:
            with open(dest, "wb") as f:
                for chunk in response.iter_raw(CHUNK):  # the object's bytes as stored, nothing decoded
                    done += len(chunk)
                    if done > limit:
                        raise too_large
                    f.write(chunk)
        except OSError as e:
            if e.errno not in OUT_OF_SPACE_ERRNOS:
                raise
            raise out_of_space("scratch space", f"{type(e).__name__}: {e}") from None
        if length.isdigit() and done < int(length):
            raise httpx.RemoteProtocolError(f"the connection closed after {done:,} of {int(length):,} bytes")

    # --- one request, retried ----------------------------------------------------------------

    def _attempts(
        self, url: str, send: Callable[[], httpx.Response], failed: Callable[[str], JobFailure]
    ) -> httpx.Response:
        """``send`` until it gets an answer that is not worth retrying or the attempts run out;
        returns the last answer, or raises ``failed(problem)`` if the store was never reached."""
        for attempt in range(1, self._retry.attempts + 1):
            last = attempt == self._retry.attempts
            try:
                response = send()
            except httpx.TransportError as e:
                if last:
                    raise failed(_transport_problem(e, url)) from None
                self._sleep(self._retry.delay(attempt, None))
                continue
            if last or not retryable(response.status_code):
                return response
            self._sleep(self._retry.delay(attempt, retry_after_seconds(response.headers.get("retry-after"))))
        raise AssertionError("unreachable")
