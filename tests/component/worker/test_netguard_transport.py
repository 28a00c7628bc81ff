"""The guarded httpx transport (sync and async) and aiohttp session against real loopback servers,
plain and TLS."""

from __future__ import annotations

import gzip
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aiohttp
import pytest

from audio_extract_common.address_policy import AllowList, BlockedAddress, UnsupportedURL
from audio_extract_common.aiohttp_guard import guarded_session
from audio_extract_common.httpx_guard import guarded_async_client, guarded_client
from support.loopback_servers import Server, fake_dns


def answer(h: BaseHTTPRequestHandler, text: str) -> None:
    body = text.encode()
    h.send_response(200)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def ok(h: BaseHTTPRequestHandler) -> None:
    answer(h, f"host={h.headers.get('Host')}")


def test_connects_to_checked_address_and_keeps_host(server: Server) -> None:
    server.routes["/x"] = ok
    with guarded_client(AllowList.parse("127.0.0.1/32")) as client:
        response = client.get(f"http://localhost:{server.port}/x")
    assert response.text == f"host=localhost:{server.port}"
    assert len(server.hits) == 1


def test_refuses_without_allowlist_and_never_connects(server: Server) -> None:
    server.routes["/x"] = ok
    with guarded_client() as client, pytest.raises(BlockedAddress):
        client.get(server.url("/x"))
    assert server.hits == []


def test_redirects_are_returned_not_followed(make_server) -> None:  # type: ignore[no-untyped-def]
    front, target = make_server("127.0.0.1"), make_server("127.0.0.1")
    target.routes["/t"] = ok

    def redirect(h: BaseHTTPRequestHandler) -> None:
        h.send_response(308)
        h.send_header("Location", target.url("/t"))
        h.send_header("Content-Length", "0")
        h.end_headers()

    front.routes["/r"] = redirect
    with guarded_client(AllowList.parse("127.0.0.0/8")) as client:
        assert client.get(front.url("/r")).status_code == 308
    assert target.hits == []


def test_dns_rebinding_cannot_move_the_connection(monkeypatch: pytest.MonkeyPatch, make_server) -> None:  # type: ignore[no-untyped-def]
    """Reference §8 item 3: the name is resolved once per request; the checked answer is used.

    127.0.0.1 stands in for the public address (allowlisted), 127.0.0.2 for the internal one
    that a second lookup would return.
    """
    public = make_server("127.0.0.1")
    internal = make_server("127.0.0.2", public.port)  # same port: only the address differs
    public.routes["/v"] = ok
    internal.routes["/v"] = ok
    calls = fake_dns(monkeypatch, {"rebind.test": ["127.0.0.1", "127.0.0.2"]})
    with guarded_client(AllowList.parse("127.0.0.1/32")) as client:
        response = client.get(f"http://rebind.test:{public.port}/v")
        assert response.text == f"host=rebind.test:{public.port}"
        # the next request resolves again, gets the internal answer, and is refused
        with pytest.raises(BlockedAddress, match="resolves to a private address") as refused:
            client.get(f"http://rebind.test:{public.port}/v")
        assert "127.0.0.2" not in str(refused.value)
    assert calls == ["rebind.test", "rebind.test"]
    assert len(public.hits) == 1 and internal.hits == []


async def test_async_client(server: Server) -> None:
    server.routes["/x"] = ok
    async with guarded_async_client(AllowList.parse("127.0.0.1/32")) as client:
        response = await client.get(server.url("/x"))
    assert response.status_code == 200
    async with guarded_async_client() as client:
        with pytest.raises(BlockedAddress):
            await client.get(server.url("/x"))
    assert len(server.hits) == 1


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path, list[str | None]]]:
    """An https server for the name ``media.test`` on 127.0.0.1, recording the SNI it receives."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=media.test",
            "-addext",
            "subjectAltName=DNS:media.test",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    names: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment,misc]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok(self)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield httpd.server_address[1], cert, names
    httpd.shutdown()
    httpd.server_close()


def test_https_keeps_sni_and_verifies_the_name(tls_server, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    port, cert, names = tls_server
    calls = fake_dns(monkeypatch, {"media.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    trust = ssl.create_default_context(cafile=str(cert))
    with guarded_client(AllowList.parse("127.0.0.1/32"), verify=trust) as client:
        response = client.get(f"https://media.test:{port}/v")
        assert response.text == f"host=media.test:{port}"
        # same IP, another name: the certificate does not cover it, so verification must fail
        with pytest.raises(Exception, match=r"(?i)certificate|hostname"):
            client.get(f"https://other.test:{port}/v")
    assert names[0] == "media.test" and "other.test" in names
    assert calls == ["media.test", "other.test"]


# --- aiohttp session (the webhook sender's) ------------------------------------------------------


class KeepAliveHandler(BaseHTTPRequestHandler):
    """Answers with the Host header and the client's port (one port per connection)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        answer(self, f"{self.headers.get('Host')} {self.client_address[1]}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def keepalive_server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), KeepAliveHandler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


async def test_session_refuses_loopback_names_and_literals_without_allowlist(server: Server) -> None:
    server.routes["/x"] = ok
    async with guarded_session() as session:
        for url in (
            f"http://localhost:{server.port}/x",
            server.url("/x"),
            f"http://[::ffff:127.0.0.1]:{server.port}/x",
        ):
            with pytest.raises(BlockedAddress):
                await session.get(url)
        with pytest.raises(UnsupportedURL, match="credentials"):
            await session.get(f"http://user:pw@127.0.0.1:{server.port}/x")
        with pytest.raises(aiohttp.NonHttpUrlClientError):  # aiohttp's own refusal, before ours
            await session.get(f"ftp://127.0.0.1:{server.port}/x")
    assert server.hits == []


async def test_session_pools_connections_by_name(
    monkeypatch: pytest.MonkeyPatch, keepalive_server: int
) -> None:
    """Two names on one address never share a connection; one name reuses its own."""
    port = keepalive_server
    calls = fake_dns(monkeypatch, {"a.test": ["127.0.0.1"], "b.test": ["127.0.0.1"]})
    seen = []
    async with guarded_session(AllowList.parse("127.0.0.1/32")) as session:
        for name in ("a.test", "b.test", "a.test", "b.test"):
            async with session.get(f"http://{name}:{port}/") as response:
                host, client_port = (await response.text()).split()
                seen.append((host, client_port))
    assert [h for h, _ in seen] == [f"{n}:{port}" for n in ("a.test", "b.test", "a.test", "b.test")]
    assert seen[0][1] == seen[2][1] and seen[1][1] == seen[3][1] and seen[0][1] != seen[1][1]
    assert calls == ["a.test", "b.test"]  # looked up once per new connection


async def test_session_checks_every_answer_of_a_new_connection(
    monkeypatch: pytest.MonkeyPatch, keepalive_server: int
) -> None:
    calls = fake_dns(monkeypatch, {"rebind.test": ["127.0.0.1", "127.0.0.2"]})
    allow = AllowList.parse("127.0.0.1/32")
    async with guarded_session(allow) as session, session.get(f"http://rebind.test:{keepalive_server}/") as r:
        assert r.status == 200
    async with guarded_session(allow) as session:  # a new connection looks the name up again
        with pytest.raises(BlockedAddress, match="resolves to a private address") as refused:
            await session.get(f"http://rebind.test:{keepalive_server}/")
        assert "127.0.0.2" not in str(refused.value)
    assert calls == ["rebind.test", "rebind.test"]


async def test_session_https_verifies_the_name(tls_server, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    port, cert, names = tls_server
    fake_dns(monkeypatch, {"media.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    trust = ssl.create_default_context(cafile=str(cert))
    async with guarded_session(AllowList.parse("127.0.0.1/32")) as session:
        async with session.get(f"https://media.test:{port}/v", ssl=trust) as response:
            assert await response.text() == f"host=media.test:{port}"
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get(f"https://other.test:{port}/v", ssl=trust)
    assert names[0] == "media.test" and "other.test" in names


async def test_session_resolves_an_idn_host_as_the_ascii_name_it_sends(
    monkeypatch: pytest.MonkeyPatch, keepalive_server: int
) -> None:
    """aiohttp looks up, sends and verifies ``raw_host`` (IDNA 2008); the IDNA 2003 spelling that
    getaddrinfo would make of the Unicode name is never looked up."""
    calls = fake_dns(monkeypatch, {"xn--strae-oqa.test": ["127.0.0.1"], "strasse.test": ["127.0.0.2"]})
    async with (
        guarded_session(AllowList.parse("127.0.0.0/8")) as session,
        session.get(f"http://straße.test:{keepalive_server}/") as response,
    ):
        host, _ = (await response.text()).split()
    assert host == f"xn--strae-oqa.test:{keepalive_server}"
    assert calls == ["xn--strae-oqa.test"]


async def test_session_reads_answers_as_sent_never_decoded(server: Server) -> None:
    """The webhook sender only counts an answer's bytes: nothing is asked for or decoded, so a small
    gzip answer cannot grow in memory, whichever aiohttp the range in pyproject.toml installs
    (before 3.13.3 aiohttp decoded without bound, CVE-2025-69223)."""
    body = gzip.compress(b"\0" * (8 << 20))

    def gzipped(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Encoding", "gzip")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    server.routes["/hook"] = gzipped
    async with (
        guarded_session(AllowList.parse("127.0.0.1/32"), headers={"user-agent": "t"}) as session,
        session.post(server.url("/hook"), data=b"{}") as response,
    ):
        assert await response.read() == body
    headers = server.hits[0][2]
    assert headers["Accept-Encoding"] == "identity" and headers["user-agent"] == "t"
