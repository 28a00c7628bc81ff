"""The address guard's policy: which addresses a connection to a user-supplied URL may reach.

Every outbound connection to a user-supplied URL (the worker's source downloads, the API's
submission-time checks, the webhook sender) goes through one of the guard's clients, which apply
these rules: ``httpx_guard`` (the httpx transport, and the checks of a URL) and ``aiohttp_guard``
(the aiohttp session). The rules, in the order they apply:

1. Only ``http`` and ``https`` URLs without credentials (``httpx_guard.parse_url``).
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
4. The connection goes to the address that was checked, with no second lookup (each client's
   module says how).
5. The name looked up is the ASCII (IDNA) form the HTTP client puts in ``Host`` and SNI
   (``raw_host``), never the Unicode form: ``getaddrinfo`` and :mod:`ssl` encode a ``str``
   with IDNA 2003 (``straße`` → ``strasse``), httpx and aiohttp with IDNA 2008 (``straße`` →
   ``xn--strae-oqa``), so the name checked would not be the name connected to.

The predicate uses explicit tables rather than only ``ipaddress``'s ``is_private``/``is_global``
flags, whose answers changed between CPython patch releases (CVE-2024-4032, cpython#119812) and
which miss IPv4-mapped, NAT64, 6to4 and IPv4-compatible forms. Standard library only: the worker
imports it without either HTTP client.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

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
