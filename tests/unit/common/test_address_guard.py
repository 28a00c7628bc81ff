"""The address guard's predicate, allowlist, resolver check and URL check (no network)."""

from __future__ import annotations

import ipaddress
import socket

import httpx
import pytest

from audio_extract_common import address_policy
from audio_extract_common.address_policy import (
    AllowList,
    BlockedAddress,
    ResolveError,
    UnsupportedURL,
    is_public_address,
    resolve_checked,
)
from audio_extract_common.httpx_guard import GuardedTransport, guarded_async_client, resolve_url_checked

# Reference §8 item 1: every literal must be refused.
BLOCKED_LITERALS = [
    "127.0.0.1",
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.170.2",
    "100.64.0.1",
    "100.100.100.200",
    "198.18.0.1",
    "198.19.255.255",
    "240.0.0.1",
    "255.255.255.255",
    "224.0.0.1",
    "239.255.255.250",
    "192.0.0.8",
    "192.0.2.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",
    "fec0::1",
    "ff02::1",
    "ff0e::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b::7f00:1",
    "64:ff9b::a00:1",
    "64:ff9b:1::808:808",
    "2002:a9fe:a9fe::1",
    "2002:7f00:1::",
    "2002:a00:1::1",
    "::127.0.0.1",
    "::8.8.8.8",  # IPv4-compatible (deprecated) forms are refused whatever they embed
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "2001:db8::1",
    "100::1",
]
PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
]


@pytest.mark.parametrize("ip", BLOCKED_LITERALS)
def test_blocked_literals_are_not_public(ip: str) -> None:
    assert not is_public_address(ip)
    assert not is_public_address(ipaddress.ip_address(ip))


@pytest.mark.parametrize("ip", PUBLIC)
def test_public_addresses_pass(ip: str) -> None:
    assert is_public_address(ip)


def test_zone_id_is_ignored_for_classification() -> None:
    assert not is_public_address("fe80::1%eth0")


@pytest.mark.parametrize("ip", BLOCKED_LITERALS)
def test_literal_urls_refused_by_resolve_url_checked(ip: str) -> None:
    host = f"[{ip}]" if ":" in ip else ip
    with pytest.raises(BlockedAddress, match="not a public address"):
        resolve_url_checked(f"http://{host}:8080/video.mp4")


# Reference §8 item 2: getaddrinfo decodes these to loopback; ipaddress would reject the strings.
@pytest.mark.parametrize(
    "host",
    [
        "0177.0.0.1",
        "2130706433",
        "0x7f.1",
        "127.1",
        "0x7f000001",
        "localhost",
        "LOCALHOST",
        "[::ffff:127.0.0.1]",
        "[::1]",
    ],
)
def test_encoded_loopback_forms_refused(host: str) -> None:
    with pytest.raises(BlockedAddress):
        resolve_checked(host, 80, AllowList())


def test_trailing_dot_name_never_connects() -> None:
    # Depending on the resolver, "LOCALHOST." is loopback (refused) or unknown (refused too).
    with pytest.raises(address_policy.NetguardError):
        resolve_url_checked("http://LOCALHOST./")


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",
        "http://0x7f.1/a.mp4",
        "http://127.1:9/",
        "https://localhost/x",
        "http://[::ffff:127.0.0.1]/",
        "http://0177.0.0.1/",
    ],
)
def test_encoded_urls_refused(url: str) -> None:
    with pytest.raises(BlockedAddress):
        resolve_url_checked(url)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://example.com/",
        "ftp://example.com/a",
        "data:text/plain,hi",
        "concat:a|b",
        "subfile:,,start,0,end,0,:/etc/passwd",
        "http://user:pass@example.com/",
        "//example.com/x",
        "http:///nohost",
    ],
)
def test_unsupported_urls(url: str) -> None:
    with pytest.raises(UnsupportedURL):
        resolve_url_checked(url)


def test_allowlist_parse_and_membership() -> None:
    allow = AllowList.parse(" 10.0.0.0/8, 127.0.0.1/32 ,fd12::/16,")
    assert len(allow.networks) == 3
    assert "10.1.2.3" in allow and "127.0.0.1" in allow and "127.0.0.2" not in allow
    assert "::ffff:127.0.0.1" in allow  # mapped form matches the IPv4 entry
    assert "fd12::5" in allow and "8.8.8.8" not in allow
    assert not AllowList.parse("") and not AllowList.parse(None)
    with pytest.raises(ValueError, match="invalid CIDR"):
        AllowList.parse("10.0.0.0/33")


@pytest.mark.parametrize(
    "metadata",
    [
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::a9fe:aa02",
        "64:ff9b::6464:64c8",  # NAT64 (RFC 6052 /96)
        "64:ff9b:1:a9fe:a9:fe00::",
        "64:ff9b:1::a9fe:a9fe",  # NAT64 local-use prefix, /48 and /96 layouts
        "2002:a9fe:a9fe::1",
        "2002:6464:64c8::",  # 6to4
        "::a9fe:a9fe",  # IPv4-compatible
        "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo, client 169.254.169.254 (stored inverted)
    ],
)
def test_metadata_embedded_in_ipv6_is_refused_even_when_the_prefix_is_allowlisted(metadata: str) -> None:
    allow = AllowList.parse("64:ff9b::/96,64:ff9b:1::/48,2002::/16,::/96,2001::/32")
    assert metadata in allow
    assert not address_policy.is_allowed(metadata, allow)
    assert not address_policy.is_allowed(metadata, AllowList.parse("::/0"))
    assert address_policy.is_allowed("64:ff9b::a9fe:a901", allow)  # 169.254.169.1: link-local, not metadata


def test_allowlist_permits_private_but_never_metadata() -> None:
    allow = AllowList.parse("127.0.0.0/8,169.254.0.0/16,fc00::/7")
    assert resolve_checked("127.0.0.1", 80, allow) == [ipaddress.ip_address("127.0.0.1")]
    assert resolve_checked("0x7f.1", 80, allow) == [ipaddress.ip_address("127.0.0.1")]
    for metadata in ("169.254.169.254", "[fd00:ec2::254]"):
        with pytest.raises(BlockedAddress):
            resolve_checked(metadata, 80, allow)
    assert address_policy.is_allowed("169.254.1.1", allow)
    assert not address_policy.is_allowed("::ffff:169.254.169.254", AllowList.parse("::/0,0.0.0.0/0"))


def test_unresolvable_name() -> None:
    with pytest.raises(ResolveError, match="cannot resolve"):
        resolve_checked("no-such-host.invalid", 80)


def _fake_getaddrinfo(answers: dict[str, list[str]]):
    calls: list[str] = []

    def fake(host, port, family=0, type=0, proto=0, flags=0):
        calls.append(host)
        out = []
        for a in answers[host]:
            fam = socket.AF_INET6 if ":" in a else socket.AF_INET
            sockaddr = (a, port, 0, 0) if fam == socket.AF_INET6 else (a, port)
            out.append((fam, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        return out

    return fake, calls


def test_name_resolving_to_private_is_refused_without_saying_where(monkeypatch: pytest.MonkeyPatch) -> None:
    """The message reaches the submitter (API 400, job error, webhook lastError): it must not map
    the internal network for them, so it says that the address is private, never which it is."""
    fake, _ = _fake_getaddrinfo(
        {"internal.example.com": ["10.1.2.3"], "meta.example.com": ["169.254.169.254"]}
    )
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    for name, address in (("internal.example.com", "10.1.2.3"), ("meta.example.com", "169.254.169.254")):
        with pytest.raises(BlockedAddress, match=rf"'{name}' resolves to a private address") as refused:
            resolve_url_checked(f"https://{name}/v.mp4")
        assert address not in str(refused.value)
        allowed = AllowList.parse("0.0.0.0/0")
        if address == "169.254.169.254":  # refused even when allowlisted, still without the address
            with pytest.raises(BlockedAddress) as refused:
                resolve_url_checked(f"https://{name}/v.mp4", allowed)
            assert address not in str(refused.value)


def test_any_disallowed_answer_refuses_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reference §8 item 4: one public A and one private AAAA → refused (documented decision)."""
    fake, _ = _fake_getaddrinfo(
        {
            "mixed.example.com": ["93.184.216.34", "fd00::1"],
            "public.example.com": ["93.184.216.34", "2606:4700::1", "93.184.216.34"],
        }
    )
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    with pytest.raises(BlockedAddress, match="resolves to a private address"):
        resolve_checked("mixed.example.com", 443)
    assert resolve_checked("public.example.com", 443) == [
        ipaddress.ip_address("93.184.216.34"),
        ipaddress.ip_address("2606:4700::1"),
    ]


def test_transport_refuses_before_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused host never reaches the inner transport (no connection attempt at all)."""
    fake, calls = _fake_getaddrinfo({"rebind.example.com": ["127.0.0.1"]})
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    transport = GuardedTransport()

    def boom(request: httpx.Request) -> httpx.Response:
        raise AssertionError("inner transport must not be called")

    monkeypatch.setattr(transport._sync, "handle_request", boom)
    with httpx.Client(transport=transport) as client, pytest.raises(BlockedAddress):
        client.get("http://rebind.example.com/x")
    assert calls == ["rebind.example.com"]


def test_transport_pins_checked_address_and_keeps_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """The request goes to the checked IP, with Host and SNI still naming the host."""
    fake, calls = _fake_getaddrinfo({"media.example.com": ["93.184.216.34"]})
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    transport = GuardedTransport()
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    monkeypatch.setattr(transport._sync, "handle_request", record)
    with httpx.Client(transport=transport) as client:
        assert client.get("https://media.example.com:8443/a.mp4?x=1").status_code == 204
    (req,) = seen
    assert str(req.url) == "https://93.184.216.34:8443/a.mp4?x=1"
    assert req.headers["host"] == "media.example.com:8443"
    assert req.extensions["sni_hostname"] == "media.example.com"
    assert calls == ["media.example.com"]


async def test_async_transport_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    fake, _ = _fake_getaddrinfo({"meta.example.com": ["169.254.169.254"]})
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    async with guarded_async_client() as client:
        with pytest.raises(BlockedAddress, match=r"'meta\.example\.com' resolves to a private address"):
            await client.post("http://meta.example.com/hook", content=b"{}")


def test_idn_host_is_resolved_as_the_ascii_name_httpx_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    """IDNA 2003 (getaddrinfo and ssl, given a str) makes strasse.example of straße.example; IDNA 2008
    (httpx, aiohttp) makes xn--strae-oqa.example, which is what goes into Host and SNI. The guard
    must look up the name the request is for."""
    fake, calls = _fake_getaddrinfo({"xn--strae-oqa.example": ["93.184.216.34"]})
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    assert resolve_url_checked("https://straße.example/v.mp4") == [ipaddress.ip_address("93.184.216.34")]
    assert calls == ["xn--strae-oqa.example"]


def test_transport_pins_an_idn_host_by_its_ascii_name(monkeypatch: pytest.MonkeyPatch) -> None:
    fake, calls = _fake_getaddrinfo({"xn--strae-oqa.example": ["93.184.216.34"]})
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    transport = GuardedTransport()
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    monkeypatch.setattr(transport._sync, "handle_request", record)
    with httpx.Client(transport=transport) as client:
        client.get("https://straße.example/a.mp4")
    (req,) = seen
    assert req.headers["host"] == "xn--strae-oqa.example"
    assert req.extensions["sni_hostname"] == "xn--strae-oqa.example"
    assert calls == ["xn--strae-oqa.example"]


def test_response_url_is_the_requested_name_not_the_pinned_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """Callers join a redirect's Location with ``response.url``: it must be the name, or a relative
    redirect would go to the bare IP (wrong Host, certificate checked against the IP)."""
    fake, _ = _fake_getaddrinfo({"media.example.com": ["93.184.216.34"]})
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    transport = GuardedTransport()
    monkeypatch.setattr(
        transport._sync,
        "handle_request",
        lambda request: httpx.Response(302, headers={"Location": "/final.mp4"}),
    )
    with httpx.Client(transport=transport) as client:
        response = client.get("https://media.example.com:8443/a.mp4")
    assert str(response.url) == "https://media.example.com:8443/a.mp4"
    assert str(response.next_request.url) == "https://media.example.com:8443/final.mp4"  # type: ignore[union-attr]


def test_sni_drops_the_trailing_dot_of_an_absolute_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """``media.example.com.`` is the same name, but certificates never end in a dot: SNI and the
    certificate check use the name without it (as aiohttp does), the lookup keeps it."""
    fake, calls = _fake_getaddrinfo({"media.example.com.": ["93.184.216.34"]})
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    transport = GuardedTransport()
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    monkeypatch.setattr(transport._sync, "handle_request", record)
    with httpx.Client(transport=transport) as client:
        client.get("https://media.example.com./a.mp4")
    (req,) = seen
    assert req.extensions["sni_hostname"] == "media.example.com"
    assert calls == ["media.example.com."]
