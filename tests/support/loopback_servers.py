"""Real HTTP and HTTPS servers on loopback addresses (``Server``: name-based virtual hosts,
certificates from a ``TestCA`` made for the test), and made-up names resolving to them
(``fake_dns``)."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REAL_GETADDRINFO = socket.getaddrinfo


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """Answers for made-up names (one list entry per successive lookup of that name); other hosts
    resolve for real. Returns the names looked up, in order, exactly as the resolver got them."""
    calls: list[str] = []

    def resolve(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(host, str) and not host.isascii():
            host = host.encode("idna").decode("ascii")  # what the real getaddrinfo looks up (IDNA 2003)
        if host not in answers:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        calls.append(host)
        address = answers[host][min(calls.count(host), len(answers[host])) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return calls


class TestCA:
    """A certificate authority made for one test: only a client told to trust ``ca_file`` does."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, root: Path) -> None:
        self.root = root
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "audio-extract test CA")])
        self.cert = (
            self._builder(self.name, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = root / "ca.pem"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def _builder(self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    def server_context(self, *names: str) -> ssl.SSLContext:
        """A server-side TLS context with a certificate for ``names`` (DNS names or IP addresses)."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        cert = (
            self._builder(subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        stem = self.root / f"leaf-{x509.random_serial_number()}"
        cert_file, key_file = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        return context


Handler = Callable[[BaseHTTPRequestHandler], None]


def json_route(payload: object, status: int = 200, delay: float = 0.0) -> Handler:
    """A ``Server`` route answering ``status`` with ``payload`` as JSON, ``delay`` seconds late."""
    body = json.dumps(payload).encode()

    def send(h: BaseHTTPRequestHandler) -> None:
        time.sleep(delay)
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return send


@dataclass
class Server:
    """A real HTTP(S) server on a loopback address; ``routes`` maps a path to a handler.

    With ``vhost`` set it is a name-based virtual host: any request whose ``Host`` header is not
    that name (with the port) answers 404, as a shared hosting front does. With ``tls`` it speaks
    https and records the SNI name of every handshake in ``sni``.
    """

    host: str = "127.0.0.1"
    routes: dict[str, Handler] = field(default_factory=dict)
    hits: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    httpd: ThreadingHTTPServer | None = None
    _port: int = 0
    vhost: str | None = None
    tls: ssl.SSLContext | None = None
    sni: list[str | None] = field(default_factory=list)

    @property
    def port(self) -> int:
        if self.httpd is not None:
            self._port = self.httpd.server_address[1]
        return self._port

    def url(self, path: str) -> str:
        host = self.vhost or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    def file(self, path: str, source: Path, content_type: str = "video/mp4") -> str:
        def send(h: BaseHTTPRequestHandler) -> None:
            data = source.read_bytes()
            h.send_response(200)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)

        self.routes[path] = send
        return self.url(path)

    def start(self) -> Server:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.hits.append((self.command, self.path, dict(self.headers), body))
                route = server.routes.get(self.path.split("?")[0])
                if server.vhost and self.headers.get("Host") != f"{server.vhost}:{server.port}":
                    route = None
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    route(self)

            do_GET = do_POST = do_PUT = _any

            def log_message(self, *args: object) -> None:
                pass

        family_server = ThreadingHTTPServer
        if ":" in self.host:
            import socket

            class _V6(ThreadingHTTPServer):
                address_family = socket.AF_INET6

            family_server = _V6
        self.httpd = family_server((self.host, self._port), _Handler)
        self.httpd.daemon_threads = True
        if self.tls is not None:
            self.tls.sni_callback = lambda sock, name, ctx: self.sni.append(name)  # type: ignore[assignment,misc]
            self.httpd.socket = self.tls.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
