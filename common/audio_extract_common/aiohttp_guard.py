"""The address guard for aiohttp sessions: the webhook sender.

The webhook sender makes thousands of small requests, where httpx's per-request CPU cost is about
ten times aiohttp's (docs/benchmarks.md, "Encoder and filter choices"), so it uses aiohttp through
:func:`guarded_session`: the connector's resolver is :class:`GuardedResolver` (every answer
checked by ``address_policy.resolve_checked``; aiohttp connects to exactly the addresses it
returns) and a middleware applies the policy's rules 1 and 3 to literal-address hosts, which
aiohttp never sends to a resolver. Its connections are pooled by name, port and TLS context, so a
kept-alive connection only ever carries requests for the name it was checked and verified for.
aiohttp resolves and verifies ``raw_host``, the ASCII form (rule 5).
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import cast

import aiohttp
import anyio.to_thread
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.helpers import is_ip_address

from .address_policy import AllowList, IPAddress, UnsupportedURL, resolve_checked

Lookup = Callable[[str, int, AllowList], Awaitable[list[IPAddress]]]
"""Runs :func:`resolve_checked` for :class:`GuardedResolver` (``host, port, allow``), e.g.
bounded in time and threads (``audio_extract_common.resolver``)."""


async def _threaded_lookup(host: str, port: int, allow: AllowList) -> list[IPAddress]:
    return await anyio.to_thread.run_sync(resolve_checked, host, port, allow)


class GuardedResolver(AbstractResolver):
    """aiohttp resolver applying :func:`resolve_checked`: a name with any disallowed answer is
    refused (:class:`BlockedAddress` propagates out of the request unchanged)."""

    def __init__(self, allow: AllowList | None = None, lookup: Lookup | None = None) -> None:
        self.allow = allow or AllowList()
        self.lookup = lookup or _threaded_lookup

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self.lookup(host, port, self.allow)
        return [
            ResolveResult(
                hostname=host,
                host=str(a),
                port=port,
                family=socket.AF_INET if a.version == 4 else socket.AF_INET6,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for a in addresses
        ]

    async def close(self) -> None:
        pass


def _literal_guard(allow: AllowList) -> aiohttp.ClientMiddlewareType:
    async def guard(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise UnsupportedURL(f"only http and https URLs are allowed, not {url.scheme or 'none'!r}")
        if "Authorization" in request.headers:  # where aiohttp has put credentials from the URL
            raise UnsupportedURL("URL must not contain credentials")
        host = url.raw_host or ""
        if not host:
            raise UnsupportedURL("URL has no host")
        if is_ip_address(host):  # aiohttp skips the resolver for these
            resolve_checked(host, url.port or 0, allow)  # numeric: parsed, never looked up
        return await handler(request)

    return guard


def guarded_session(
    allow: AllowList | None = None, *, limit: int = 100, lookup: Lookup | None = None, **kwargs: object
) -> aiohttp.ClientSession:
    """An aiohttp session whose every connection goes to an address the guard allowed.

    Create it inside the running event loop; pass ``allow_redirects=False`` on requests that
    must not follow redirects (every hop would be checked, but the webhook rules forbid them).
    Answers are read as sent (``identity`` is asked for, nothing is decoded): the webhook sender
    only counts their bytes, and decoding would let a small gzip answer grow in memory (aiohttp
    before 3.13.3, which pyproject.toml allows, decoded without bound: CVE-2025-69223).
    ``lookup`` runs the guard's lookups (default: unbounded, in anyio's shared worker threads).
    """
    allow = allow or AllowList()
    headers = cast("Mapping[str, str]", kwargs.get("headers") or {})
    kwargs["headers"] = {"Accept-Encoding": "identity", **headers}
    kwargs.setdefault("auto_decompress", False)
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(allow, lookup), use_dns_cache=False, limit=limit
    )
    return aiohttp.ClientSession(
        connector=connector,
        middlewares=(_literal_guard(allow),),
        trust_env=False,
        **kwargs,  # type: ignore[arg-type]
    )
