"""The address guard for httpx clients (the worker's downloads, the API's checks of submitted URLs).

The URL is parsed as httpx will send it and checked (``address_policy``'s rules 1, 2, 3 and 5);
rule 4, the connection goes to the address that was checked with no second lookup, is
:class:`GuardedTransport`'s: the request sent on is a copy whose URL names the IP, whose ``Host``
header keeps the name and, for https, whose ``sni_hostname`` extension keeps SNI and certificate
verification on the name. The caller's request, and so ``response.url``, keep the name, so a
relative ``Location`` joins onto the name. Redirects are never followed here: callers that follow
them send each hop through the same transport, so every hop is checked again.
"""

from __future__ import annotations

import ipaddress
import ssl

import anyio.to_thread
import httpx

from .address_policy import AllowList, IPAddress, UnsupportedURL, resolve_checked


def default_port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def ascii_host(url: httpx.URL) -> str:
    """The host as httpx sends it in ``Host`` and SNI: IDNA 2008 for names, no brackets for IPv6."""
    return url.raw_host.decode("ascii")


def parse_url(url: str | httpx.URL) -> httpx.URL:
    """Parse with httpx (the client that will connect) and apply the scheme/credential rules."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as e:
        raise UnsupportedURL(f"invalid URL: {e}") from None
    if parsed.scheme not in ("http", "https"):
        raise UnsupportedURL(f"only http and https URLs are allowed, not {parsed.scheme or 'none'!r}")
    if parsed.userinfo:
        raise UnsupportedURL("URL must not contain credentials")
    if not parsed.host:
        raise UnsupportedURL("URL has no host")
    return parsed


def resolve_url_checked(url: str | httpx.URL, allow: AllowList | None = None) -> list[IPAddress]:
    """Submission-time check of a URL: its scheme, then every address its host resolves to (which it
    returns). Its text alone is ``spec_rules.check_url_syntax``'s."""
    parsed = parse_url(url)
    return resolve_checked(ascii_host(parsed), default_port(parsed), allow)


class GuardedTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An httpx transport that checks the destination of every request and pins the connection.

    Usable as ``httpx.Client(transport=...)`` and ``httpx.AsyncClient(transport=...)`` (use
    :func:`guarded_client` / :func:`guarded_async_client`, which also turn off environment
    proxies and redirect following). Each request is resolved with :func:`resolve_checked` and
    sent on as a copy addressed to the first checked address, so the connection cannot land
    anywhere else (no second DNS lookup, no rebinding window). Keep-alive is off: connections
    are pooled by IP, and a connection opened with one name's SNI must never carry another
    name's request.
    """

    def __init__(self, allow: AllowList | None = None, *, verify: bool | ssl.SSLContext = True) -> None:
        self.allow = allow or AllowList()
        limits = httpx.Limits(max_keepalive_connections=0)
        self._sync = httpx.HTTPTransport(verify=verify, limits=limits, retries=0)
        self._async = httpx.AsyncHTTPTransport(verify=verify, limits=limits, retries=0)

    @staticmethod
    def _pinned(request: httpx.Request, host: str, address: IPAddress) -> httpx.Request:
        # A copy: the client keeps the original as response.request, whose URL must stay the name.
        headers = httpx.Headers(request.headers)
        headers.setdefault("Host", request.url.netloc.decode("ascii"))  # set at build time; keep it
        extensions = dict(request.extensions)
        if request.url.scheme == "https" and _is_name(host):
            extensions["sni_hostname"] = host.rstrip(".")  # certificates never name "example.com."
        return httpx.Request(
            request.method,
            request.url.copy_with(host=str(address)),
            headers=headers,
            stream=request.stream,
            extensions=extensions,
        )

    def _check(self, request: httpx.Request) -> tuple[str, int]:
        try:
            parse_url(request.url)
        except UnsupportedURL as e:
            raise httpx.UnsupportedProtocol(str(e), request=request) from e
        return ascii_host(request.url), default_port(request.url)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host, port = self._check(request)
        address = resolve_checked(host, port, self.allow)[0]
        return self._sync.handle_request(self._pinned(request, host, address))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host, port = self._check(request)
        # getaddrinfo blocks: run it off the event loop.
        address = (await anyio.to_thread.run_sync(resolve_checked, host, port, self.allow))[0]
        return await self._async.handle_async_request(self._pinned(request, host, address))

    def close(self) -> None:
        self._sync.close()

    async def aclose(self) -> None:
        await self._async.aclose()


def _is_name(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


def guarded_client(
    allow: AllowList | None = None, *, verify: bool | ssl.SSLContext = True, **kwargs: object
) -> httpx.Client:
    """A sync client whose every connection goes through :class:`GuardedTransport`."""
    return httpx.Client(
        transport=GuardedTransport(allow, verify=verify),
        follow_redirects=False,
        trust_env=False,
        **kwargs,  # type: ignore[arg-type]
    )


def guarded_async_client(
    allow: AllowList | None = None, *, verify: bool | ssl.SSLContext = True, **kwargs: object
) -> httpx.AsyncClient:
    """An async client whose every connection goes through :class:`GuardedTransport`."""
    return httpx.AsyncClient(
        transport=GuardedTransport(allow, verify=verify),
        follow_redirects=False,
        trust_env=False,
        **kwargs,  # type: ignore[arg-type]
    )
