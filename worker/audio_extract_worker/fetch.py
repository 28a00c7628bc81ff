"""Download the source to a scratch file: address-checked, redirect-capped, size- and time-capped.

Every connection goes through :class:`~audio_extract_common.httpx_guard.GuardedTransport`, so the
host of the URL and of every redirect hop is resolved once, checked, and connected to by IP,
with the hop's name in ``Host`` and SNI. A ``Location`` is joined onto the URL that was asked
for (absolute, relative or protocol-relative), never onto the address it was sent to.

The body is streamed to disk in 1 MiB chunks of the bytes as they came off the wire, counted
against the cap before they are written. The request asks for ``identity``, and an answer with
any other ``Content-Encoding`` is refused before its body is read: decoding it would let a few
hundred bytes of nested gzip expand to gigabytes in memory in one decoder call, before any cap
could see them.

A failure is permanent (the Job fails at once) when the same request would fail the same way:
the address is refused, the URL or a redirect is unusable, or the server answered a 4xx other
than 408, 425 and 429. Timeouts, lost connections, resolver errors and 5xx are retried.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

import httpx

from audio_extract_common.address_policy import AllowList, BlockedAddress, NetguardError
from audio_extract_common.batch_status import ErrorCode
from audio_extract_common.httpx_guard import guarded_client, parse_url

from .errors import JobFailure

CHUNK = 1 << 20
REDIRECTS = frozenset({301, 302, 303, 307, 308})
RETRYABLE_STATUS = frozenset({408, 425, 429})
"""4xx answers that say "not now" rather than "never"."""
USER_AGENT = "audio-extract-worker/0.1"


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int
    connect_timeout: float
    read_timeout: float
    max_redirects: int = 3


@dataclass(frozen=True)
class Fetched:
    name: str
    """Base name of the URL's path (for ``inputFile.name``)."""
    size: int


def _failed(message: str, details: str | None = None, *, permanent: bool = False) -> JobFailure:
    return JobFailure(ErrorCode.DOWNLOAD_FAILED, message, details, permanent=permanent)


def _permanent_status(status: int) -> bool:
    return status < 500 and status not in RETRYABLE_STATUS


def _too_large(limit: int) -> JobFailure:
    return JobFailure(ErrorCode.SOURCE_TOO_LARGE, f"the source is larger than the {limit:,}-byte limit")


def url_basename(url: str) -> str:
    return PurePosixPath(unquote(httpx.URL(url).path)).name


def download(
    url: str,
    dest: Path,
    allow: AllowList,
    limits: FetchLimits,
    on_progress: Callable[[int, int | None], None] = lambda done, total: None,
) -> Fetched:
    """Fetch ``url`` into ``dest``; on any failure ``dest`` is removed and JobFailure raised."""
    timeout = httpx.Timeout(
        connect=limits.connect_timeout,
        read=limits.read_timeout,
        write=limits.read_timeout,
        pool=limits.connect_timeout,
    )
    try:
        with guarded_client(allow, timeout=timeout, headers={"User-Agent": USER_AGENT}) as client:
            size = _follow(client, url, dest, limits, on_progress)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            dest.unlink()
        raise
    return Fetched(name=url_basename(url), size=size)


def _follow(
    client: httpx.Client,
    url: str,
    dest: Path,
    limits: FetchLimits,
    on_progress: Callable[[int, int | None], None],
) -> int:
    current: str | httpx.URL = url
    for hop in range(limits.max_redirects + 1):
        where = "a redirect target" if hop else "the source"
        try:
            current = parse_url(current)
            with client.stream("GET", current, headers={"Accept-Encoding": "identity"}) as response:
                if response.status_code in REDIRECTS and "location" in response.headers:
                    current = _next_hop(current, response.headers["location"])
                    continue
                if not response.is_success:
                    raise _failed(
                        f"the source answered HTTP {response.status_code}",
                        f"{response.status_code} {response.reason_phrase}".strip(),
                        permanent=_permanent_status(response.status_code),
                    )
                return _save(response, dest, limits.max_bytes, on_progress)
        except NetguardError as e:
            # a refusal is final; a name that did not resolve (ResolveError) may resolve next time
            raise _failed(f"{where} is not allowed: {e}", permanent=isinstance(e, BlockedAddress)) from None
        except httpx.TimeoutException as e:
            kind = "connecting to" if isinstance(e, httpx.ConnectTimeout) else "reading from"
            seconds = limits.connect_timeout if kind == "connecting to" else limits.read_timeout
            raise _failed(f"timed out {kind} the source (limit {seconds:g} s)") from None
        except httpx.ConnectError as e:
            raise _failed("cannot connect to the source host", str(e) or None) from None
        except httpx.HTTPError as e:
            raise _failed("the download failed", f"{type(e).__name__}: {e}") from None
    raise _failed(f"too many redirects (more than {limits.max_redirects})", permanent=True)


def _next_hop(current: httpx.URL, location: str) -> httpx.URL:
    """The redirect target, joined onto the URL asked for (its name, not the pinned address)."""
    try:
        return current.join(location)
    except httpx.InvalidURL as e:
        raise _failed(f"the source redirected to an invalid URL: {e}", permanent=True) from None


def _check_encoding(response: httpx.Response) -> None:
    codings = [c.strip().lower() for c in response.headers.get_list("content-encoding", split_commas=True)]
    if any(c not in ("", "identity") for c in codings):
        encoding = ", ".join(response.headers.get_list("content-encoding"))
        raise _failed(
            f"the source answered with Content-Encoding {encoding!r} although it was asked "
            "for the file as it is (identity); encoded answers are not accepted",
            permanent=True,
        )


def _save(
    response: httpx.Response, dest: Path, max_bytes: int, on_progress: Callable[[int, int | None], None]
) -> int:
    _check_encoding(response)
    total: int | None = None
    with contextlib.suppress(KeyError, ValueError):
        total = int(response.headers["content-length"])
    if total is not None and total > max_bytes:
        raise _too_large(max_bytes)  # refuse before reading a byte
    done = 0
    with open(dest, "wb") as f:
        for chunk in response.iter_raw(CHUNK):  # wire bytes: nothing is decoded
            done += len(chunk)
            if done > max_bytes:  # no or lying Content-Length: stop at the cap
                raise _too_large(max_bytes)
            f.write(chunk)
            on_progress(done, total)
    if total is not None and done < total:
        raise _failed(f"the connection closed after {done:,} of {total:,} bytes")
    return done
