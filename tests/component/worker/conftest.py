"""Fixtures for the worker's component tests: media generated with real ffmpeg, real HTTP and
HTTPS servers on loopback (name-based virtual hosts behind made-up names, certificates from a test
CA), and helpers that run a job in process or as ``python -m audio_extract_worker``.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from audio_extract_common.results import WorkerResult
from audio_extract_common.store import FilesystemStore
from audio_extract_worker.job import run_job
from audio_extract_worker.progress import ProgressReporter
from audio_extract_worker.settings import WorkerSettings
from audio_extract_worker.spec import WorkerJob

JOB_ID = "job_00c0ffee00c0ffee"
BATCH_ID = "batch_00c0ffee00c0ff00"
SOURCE_SECONDS = 3.0


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *args], check=True, timeout=60)


def ffprobe_json(path: Path, *entries: str) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", *entries, "-of", "json", str(path)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


# Two independent noise channels: broadband content, so VBR encoders land near their nominal rates.
NOISE = (
    "anoisesrc=c=white:a=0.2:r=48000:d={d}:seed=1[l];anoisesrc=c=pink:a=0.3:r=48000:d={d}:seed=2[r];"
    "[l][r]join=inputs=2:channel_layout=stereo"
)


class Media:
    """Source files, generated on first use and shared by the session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.RLock()  # media built from other media nest

    def _make(self, name: str, build: Callable[[Path], None]) -> Path:
        path = self.root / name
        with self._lock:
            if not path.exists():
                partial = path.with_name(f"partial-{name}")
                build(partial)
                partial.rename(path)
        return path

    @property
    def pcm_mkv(self) -> Path:
        """Video + 48 kHz stereo PCM (no lossy codec, so every target is a real encode)."""
        return self._make(
            "pcm.mkv",
            lambda p: ffmpeg(
                "-f",
                "lavfi",
                "-i",
                f"testsrc=s=64x48:r=10:d={SOURCE_SECONDS}",
                "-filter_complex",
                NOISE.format(d=SOURCE_SECONDS),
                "-c:v",
                "mpeg4",
                "-c:a",
                "pcm_s16le",
                str(p),
            ),
        )

    @property
    def aac_mp4(self) -> Path:
        """Video + AAC 256k in MP4, with a title tag."""
        return self._make(
            "aac.mp4",
            lambda p: ffmpeg(
                "-f",
                "lavfi",
                "-i",
                f"testsrc=s=64x48:r=10:d={SOURCE_SECONDS}",
                "-filter_complex",
                NOISE.format(d=SOURCE_SECONDS),
                "-c:v",
                "mpeg4",
                "-c:a",
                "aac",
                "-b:a",
                "256k",
                "-metadata",
                "title=Source Title",
                str(p),
            ),
        )

    @property
    def aac_low_mp4(self) -> Path:
        """AAC at 96k: below the medium tier, so no copy for medium and above."""
        return self._make(
            "aac96.mp4",
            lambda p: ffmpeg(
                "-filter_complex", NOISE.format(d=SOURCE_SECONDS), "-c:a", "aac", "-b:a", "96k", str(p)
            ),
        )

    @property
    def video_only(self) -> Path:
        return self._make(
            "video-only.mp4",
            lambda p: ffmpeg("-f", "lavfi", "-i", "testsrc=s=64x48:r=10:d=1", "-c:v", "mpeg4", str(p)),
        )

    @property
    def truncated(self) -> Path:
        def build(p: Path) -> None:
            data = self.aac_mp4.read_bytes()
            p.write_bytes(data[: len(data) // 2])  # the moov atom (at the end) is lost

        return self._make("truncated.mp4", build)

    @property
    def truncated_faststart(self) -> Path:
        """Index (moov) first, then half the media data: probes fine, decodes only partly."""

        def build(p: Path) -> None:
            full = self.root / "faststart-full.mp4"
            ffmpeg(
                "-f",
                "lavfi",
                "-i",
                f"testsrc=s=64x48:r=10:d={SOURCE_SECONDS}",
                "-filter_complex",
                NOISE.format(d=SOURCE_SECONDS),
                "-c:v",
                "mpeg4",
                "-c:a",
                "aac",
                "-movflags",
                "+faststart",
                str(full),
            )
            data = full.read_bytes()
            p.write_bytes(data[: len(data) // 2])

        return self._make("truncated-faststart.mp4", build)

    @property
    def random_bytes(self) -> Path:
        return self._make("random.mp4", lambda p: p.write_bytes(os.urandom(64 * 1024)))

    @property
    def empty(self) -> Path:
        return self._make("empty.mp4", lambda p: p.write_bytes(b""))

    def loudness_source(self, name: str, expr: str, post: str = "") -> Path:
        return self._make(
            f"{name}.mka",
            lambda p: ffmpeg(
                "-f",
                "lavfi",
                "-i",
                f"aevalsrc='{expr}':s=48000:d={SOURCE_SECONDS}:c=stereo{post}",
                "-c:a",
                "flac",
                str(p),
            ),
        )


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    return Media(tmp_path_factory.mktemp("media"))


# --- names and certificates ------------------------------------------------------------------

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


@pytest.fixture
def test_ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path)


# --- HTTP servers ----------------------------------------------------------------------------

Handler = Callable[[BaseHTTPRequestHandler], None]


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


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server().start()
    yield s
    s.stop()


@pytest.fixture
def make_server() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def make(
        host: str = "127.0.0.1", port: int = 0, *, vhost: str | None = None, tls: ssl.SSLContext | None = None
    ) -> Server:
        s = Server(host=host, _port=port, vhost=vhost, tls=tls).start()
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


# --- running the worker ----------------------------------------------------------------------


@dataclass
class Run:
    result: WorkerResult
    store: Path
    scratch: Path

    @property
    def output_path(self) -> Path:
        assert self.result.output is not None, self.result.error
        return self.store / self.result.output.path

    def store_files(self) -> list[Path]:
        return sorted(p for p in self.store.rglob("*") if p.is_file() and "uploads" not in p.parts)

    def scratch_files(self) -> list[Path]:
        return sorted(p for p in self.scratch.rglob("*") if p.is_file())


def job_spec(source: dict[str, Any], output: dict[str, Any], options: dict[str, Any] | None = None) -> dict:
    return {
        "jobId": JOB_ID,
        "batchId": BATCH_ID,
        "source": source,
        "output": output,
        "options": options or {},
    }


@pytest.fixture
def workdirs(tmp_path: Path) -> tuple[Path, Path]:
    store, scratch = tmp_path / "store", tmp_path / "scratch"
    store.mkdir()
    scratch.mkdir()
    return store, scratch


def upload(store: Path, source: Path, file_id: str = "upl_00000000000000aa") -> dict[str, str]:
    FilesystemStore(store).put_file(f"uploads/{file_id}", source)
    return {"type": "upload", "file": file_id}


class InProcess:
    """Runs a job through ``run_job`` (the entry point's code, minus process start-up)."""

    def __init__(self, store: Path, scratch: Path) -> None:
        self.store = store
        self.scratch = scratch

    def upload(self, source: Path, file_id: str = "upl_00000000000000aa") -> dict[str, str]:
        return upload(self.store, source, file_id)

    def run(self, spec: dict[str, Any], **settings: Any) -> Run:
        s = WorkerSettings(
            **{
                "store_root": self.store,
                "scratch_dir": self.scratch,
                "connect_timeout": 2,
                "read_timeout": 2,
                **settings,
            }
        )
        reporter = ProgressReporter(JOB_ID, None, None)
        result = run_job(WorkerJob.model_validate(spec), s, FilesystemStore(self.store), reporter)
        return Run(result, self.store, self.scratch)


@pytest.fixture
def worker(workdirs: tuple[Path, Path]) -> InProcess:
    return InProcess(*workdirs)


@dataclass
class ProcessRun(Run):
    exit_code: int = 0
    stderr: str = ""
    result_text: str = ""

    @property
    def peak_rss_mib(self) -> float:
        """The worker's own peak RSS, from its last log line."""
        finished = [
            json.loads(line.split(": ", 1)[1]) for line in self.stderr.splitlines() if '"finished"' in line
        ]
        return finished[-1]["peakRssKiB"] / 1024


@pytest.fixture
def run_process(workdirs: tuple[Path, Path], tmp_path: Path) -> Callable[..., ProcessRun]:
    """Run ``python -m audio_extract_worker`` with the contract's environment variables."""
    store, scratch = workdirs

    def run(spec: dict[str, Any] | str, timeout: float = 120, **env: str) -> ProcessRun:
        result_path = tmp_path / "termination-log"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("AUDIO_EXTRACT_WORKER_")}
        environ.update(
            {
                "AUDIO_EXTRACT_WORKER_JOB": spec if isinstance(spec, str) else json.dumps(spec),
                "AUDIO_EXTRACT_WORKER_STORE_ROOT": str(store),
                "AUDIO_EXTRACT_WORKER_SCRATCH_DIR": str(scratch),
                "AUDIO_EXTRACT_WORKER_RESULT_PATH": str(result_path),
                **{f"AUDIO_EXTRACT_WORKER_{k.upper()}": v for k, v in env.items()},
            }
        )
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "audio_extract_worker"], env=environ, capture_output=True, timeout=timeout
        )
        text = result_path.read_text() if result_path.exists() else ""
        assert text, f"no result written (exit {proc.returncode}): {proc.stderr.decode()[-2000:]}"
        run = ProcessRun(
            WorkerResult.model_validate_json(text),
            store,
            scratch,
            proc.returncode,
            proc.stderr.decode(errors="replace"),
            text,
        )
        run.elapsed = time.monotonic() - started  # type: ignore[attr-defined]
        return run

    return run


def decoded_seconds(path: Path) -> float:
    """Duration by decoding the whole file (container durations of ADTS/VBR files are estimates)."""
    proc = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-nostdin",
            "-i",
            str(path),
            "-f",
            "null",
            "-",
            "-progress",
            "pipe:1",
            "-nostats",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    times = [
        int(line.split("=")[1])
        for line in proc.stdout.decode().splitlines()
        if line.startswith("out_time_us=") and line.split("=")[1].lstrip("-").isdigit()
    ]
    return max(times) / 1e6


def audio_payload_kbps(path: Path) -> float:
    """Bitrate of the audio packets alone (container headers excluded: they dominate 3-s files)."""
    data = ffprobe_json(path, "-select_streams", "a:0", "-show_entries", "packet=size")
    total = sum(int(p["size"]) for p in data["packets"])
    return total * 8 / decoded_seconds(path) / 1000


def integrated_loudness(path: Path) -> float:
    proc = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-nostats",
            "-i",
            str(path),
            "-af",
            "ebur128=peak=true:framelog=verbose",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    from audio_extract_worker.loudness import parse_ebur128

    return parse_ebur128(proc.stderr.decode()).integrated
