"""The address guard: every outbound connection to a user-supplied URL goes through here.

Used by the worker (source downloads), the API (submission-time checks) and the webhook sender.
The rules, in the order they apply:

1. Only ``http`` and ``https`` URLs without credentials (:func:`check_url`).
2. The *resolved* addresses are checked, never the URL text: ``getaddrinfo`` accepts
   ``0177.0.0.1``, ``2130706433``, ``0x7f.1`` and ``127.1`` as 127.0.0.1, so a string filter
   is useless. :func:`resolve_checked` applies the check to **every** answer and refuses the
   host if **any** answer is not allowed. Decision: a name with one public and one private
   answer is either misconfigured or a rebinding attempt; connecting only to the public ones
   would let the attacker's DNS pick the order, and refusing is simpler to reason about.
3. An address is allowed when it is in the settings allowlist (:class:`AllowList`, default
   empty) or :func:`is_public_address` says it is globally routable. Cloud metadata addresses
   are refused even when an allowlist covers them, in any IPv6 form that embeds them.
   A refusal never says which address a name resolved to: the message reaches whoever
   submitted the URL, and must not map the internal network for them.
4. The connection goes to the address that was checked, with no second lookup
   (:class:`GuardedTransport`): the request sent on is a copy whose URL names the IP, whose
   ``Host`` header keeps the name and, for https, whose ``sni_hostname`` extension keeps SNI and
   certificate verification on the name. The caller's request, and so ``response.url``, keep
   the name, so a relative ``Location`` joins onto the name. Redirects are never followed here:
   callers that follow them send each hop through the same transport, so every hop is checked
   again.
5. The name looked up is the ASCII (IDNA) form the HTTP client puts in ``Host`` and SNI
   (``raw_host``), never the Unicode form: ``getaddrinfo`` and :mod:`ssl` encode a ``str``
   with IDNA 2003 (``straße`` → ``strasse``), httpx and aiohttp with IDNA 2008 (``straße`` →
   ``xn--strae-oqa``), so the name checked would not be the name connected to.
6. The webhook sender makes thousands of small requests, where httpx's per-request CPU cost is
   about ten times aiohttp's (docs/benchmarks.md, "Encoder and filter choices"), so it uses
   aiohttp through :func:`guarded_session`: the connector's
   resolver is :class:`GuardedResolver` (every answer checked; aiohttp connects to exactly the
   addresses it returns) and a middleware applies rules 1 and 3 to literal-address hosts, which
   aiohttp never sends to a resolver. Its connections are pooled by name, port and TLS context,
   so a kept-alive connection only ever carries requests for the name it was checked and
   verified for. aiohttp resolves and verifies ``raw_host``, the ASCII form (rule 5).

The predicate uses explicit tables rather than only ``ipaddress``'s ``is_private``/``is_global``
flags, whose answers changed between CPython patch releases (CVE-2024-4032, cpython#119812) and
which miss IPv4-mapped, NAT64, 6to4 and IPv4-compatible forms.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import cast

import aiohttp
import anyio.to_thread
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.helpers import is_ip_address

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class NetguardError(ValueError):
    """A URL or host the guard will not connect to."""


class BlockedAddress(NetguardError):
    """The URL, or an address its host resolves to, is not allowed."""


class UnsupportedURL(BlockedAddress):
    """Not an http(s) URL, credentials in it, or not parseable."""


class ResolveError(NetguardError):
    """The host name does not resolve."""


def _nets(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# Not globally routable, or special-purpose (IANA special-purpose registries, RFC 6890 and later).
_DENY_V4 = _nets(
    "0.0.0.0/8",  # "this network", includes the unspecified address
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",  # private
    "100.64.0.0/10",  # CGNAT shared space (also Alibaba metadata 100.100.100.200)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local (AWS/GCP/Azure metadata 169.254.169.254, ECS 169.254.170.2)
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",  # documentation
    "192.88.99.0/24",  # 6to4 relay anycast
    "198.18.0.0/15",  # benchmarking
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, includes broadcast 255.255.255.255
)
_DENY_V6 = _nets(
    "::/96",  # unspecified, loopback and the deprecated IPv4-compatible form (::127.0.0.1)
    "64:ff9b:1::/48",  # NAT64 local-use prefix
    "100::/64",  # discard-only
    "2001::/32",  # Teredo: the far end is an arbitrary IPv4 host behind a relay
    "2001:2::/48",
    "2001:10::/28",
    "2001:20::/28",  # benchmarking, ORCHID
    "2001:db8::/32",  # documentation
    "fc00::/7",  # unique local (AWS IPv6 metadata fd00:ec2::254 is in here)
    "fe80::/10",  # link-local
    "fec0::/10",  # site-local (deprecated, still routable inside some networks)
    "ff00::/8",  # multicast
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_6TO4 = ipaddress.ip_network("2002::/16")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254", "fd00:ec2::23")
)
"""Cloud metadata endpoints: refused even when an allowlist covers them."""


def _parse_ip(ip: str | IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return ip
    return ipaddress.ip_address(ip.split("%", 1)[0])  # drop an IPv6 zone id ("fe80::1%eth0")


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64 or 6to4), if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _6TO4:
        return ip.sixtofour
    return None


def _rfc6052_ipv4(ip: ipaddress.IPv6Address, prefix_len: int) -> ipaddress.IPv4Address:
    """The IPv4 address in a NAT64 address whose prefix is ``prefix_len`` bits long (RFC 6052 §2.2:
    the four bytes after the prefix, skipping byte 8, the "u" octet)."""
    after_prefix = [i for i in range(prefix_len // 8, 16) if i != 8]
    return ipaddress.IPv4Address(bytes(ip.packed[i] for i in after_prefix[:4]))


def _ipv4_forms(ip: IPAddress) -> set[ipaddress.IPv4Address]:
    """Every IPv4 address ``ip`` may deliver packets to, for the metadata rule. Broader than
    :func:`embedded_ipv4`: a local-use NAT64 prefix may be /48 to /96 long, so each layout counts."""
    if isinstance(ip, ipaddress.IPv4Address):
        return {ip}
    forms = {f for f in (ip.ipv4_mapped, ip.sixtofour, embedded_ipv4(ip)) if f is not None}
    if ip.teredo is not None:
        forms.add(ip.teredo[1])  # the client behind the relay
    if ip in _IPV4_COMPATIBLE or ip in _NAT64:
        forms.add(_rfc6052_ipv4(ip, 96))
    if ip in _NAT64_LOCAL:
        forms.update(_rfc6052_ipv4(ip, n) for n in (48, 56, 64, 96))
    return forms


def is_public_address(ip: str | IPAddress) -> bool:
    """True when ``ip`` is a globally routable unicast address (and no metadata endpoint).

    IPv4-mapped (``::ffff:a.b.c.d``), NAT64 (``64:ff9b::/96``) and 6to4 (``2002::/16``)
    addresses are judged by the IPv4 address they embed, since that is where packets end up.
    """
    addr = _parse_ip(ip)
    if addr in METADATA_ADDRESSES:
        return False
    inner = embedded_ipv4(addr)
    if inner is not None:
        return is_public_address(inner)
    table = _DENY_V4 if addr.version == 4 else _DENY_V6
    if any(addr in net for net in table):
        return False
    # Belt and braces: whatever this interpreter's ipaddress also considers special.
    return addr.is_global and not (
        addr.is_multicast
        or addr.is_reserved
        or addr.is_loopback
        or addr.is_link_local
        or addr.is_unspecified
        or addr.is_private
    )


@dataclass(frozen=True)
class AllowList:
    """CIDRs exempt from the public-address rule (development and tests). Empty denies."""

    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str | Iterable[str] | None) -> AllowList:
        """``"10.0.0.0/8, 127.0.0.1/32"`` (comma separated) or an iterable of CIDRs."""
        if text is None:
            return cls()
        items = text.split(",") if isinstance(text, str) else list(text)
        try:
            return cls(tuple(ipaddress.ip_network(i.strip(), strict=False) for i in items if i.strip()))
        except ValueError as e:
            raise ValueError(f"invalid CIDR in allowlist: {e}") from None

    def __contains__(self, ip: object) -> bool:
        if not isinstance(ip, str | ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        addr = _parse_ip(ip)
        # ::ffff:127.0.0.1 is 127.0.0.1 on the wire: match it against IPv4 entries too.
        candidates = [addr] + ([addr.ipv4_mapped] if addr.version == 6 and addr.ipv4_mapped else [])
        return any(c in net for c in candidates for net in self.networks if c.version == net.version)

    def __bool__(self) -> bool:
        return bool(self.networks)


def is_allowed(ip: str | IPAddress, allow: AllowList | None = None) -> bool:
    addr = _parse_ip(ip)
    # An allowlist covering 64:ff9b::/96 or 2002::/16 must not open the metadata endpoint they embed.
    if addr in METADATA_ADDRESSES or not METADATA_ADDRESSES.isdisjoint(_ipv4_forms(addr)):
        return False
    return (allow is not None and addr in allow) or is_public_address(addr)


def resolve_checked(host: str, port: int, allow: AllowList | None = None) -> list[IPAddress]:
    """Resolve ``host`` and return its addresses, all of them allowed, in resolver order.

    Raises :class:`ResolveError` when the name does not resolve and :class:`BlockedAddress`
    when **any** answer is not allowed (see the module docstring for why not just skip it).
    """
    if not host:
        raise ResolveError("URL has no host")
    if not host.isascii():  # getaddrinfo would look up the IDNA 2003 form: not what is sent (rule 5)
        raise UnsupportedURL(f"host {host!r} must be given in its ASCII (IDNA) form")
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as e:
        reason = e.strerror if isinstance(e, socket.gaierror) and e.strerror else str(e)
        raise ResolveError(f"cannot resolve host {host!r}: {reason}") from None
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        addr = _parse_ip(str(sockaddr[0]))
        if not is_allowed(addr, allow):
            what = (
                "is not a public address"
                if str(addr) == name
                else "resolves to a private address, not a public address"
            )
            raise BlockedAddress(f"host {host!r} {what}; refusing to connect")
        if addr not in addresses:
            addresses.append(addr)
    if not addresses:
        raise ResolveError(f"cannot resolve host {host!r}: no addresses")
    return addresses


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


def check_url(url: str | httpx.URL, allow: AllowList | None = None) -> list[IPAddress]:
    """Submission-time check of a URL: scheme, then every resolved address. Returns them."""
    parsed = parse_url(url)
    return resolve_checked(ascii_host(parsed), default_port(parsed), allow)


# --- httpx transport -------------------------------------------------------------------------


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


# --- aiohttp session -------------------------------------------------------------------------


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
