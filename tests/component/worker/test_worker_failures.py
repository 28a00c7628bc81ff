"""Broken media, failing downloads and SSRF attempts: the right code, a clear message, no output."""

from __future__ import annotations

import functools
import time
import zlib
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from audio_extract_common.batch_status import ErrorCode
from audio_extract_common.results import EXIT_PERMANENT
from support.loopback_servers import Server
from support.media_files import Media, ffmpeg
from support.worker_runs import InProcess, Run, job_spec

LOOPBACK = "127.0.0.0/8"


def url_job(url: str, fmt: str = "mp3") -> dict:
    return job_spec({"type": "url", "url": url}, {"format": fmt})


def assert_failed(run: Run, code: ErrorCode, *words: str) -> None:
    error = run.result.error
    assert error is not None and run.result.output is None, run.result
    assert error.code == code, error
    text = f"{error.message} {error.details or ''}".lower()
    for word in words:
        assert word.lower() in text, error
    assert run.store_files() == [], "no partial output in the store"
    assert run.scratch_files() == [], "scratch cleaned up"


@pytest.mark.parametrize(
    ("name", "code", "words"),
    [
        ("truncated", ErrorCode.INVALID_VIDEO, ["not a readable media file", "moov atom not found"]),
        ("truncated_faststart", ErrorCode.INVALID_VIDEO, ["truncated or damaged", "partial file"]),
        ("random_bytes", ErrorCode.INVALID_VIDEO, ["not a readable media file"]),
        ("video_only", ErrorCode.NO_AUDIO_STREAM, ["no audio stream", "video"]),
        ("empty", ErrorCode.INVALID_VIDEO, ["empty"]),
    ],
)
def test_broken_media(
    name: str, code: ErrorCode, words: list[str], media: Media, server: Server, worker: InProcess
) -> None:
    url = server.file("/clip.mp4", getattr(media, name))
    run = worker.run(url_job(url), allow_cidrs=LOOPBACK)
    assert_failed(run, code, *words)
    assert str(worker.scratch) not in (run.result.error.details or "")  # type: ignore[union-attr]


def test_unreachable_host(server: Server, worker: InProcess) -> None:
    port = server.port
    server.stop()  # nothing listens there any more
    run = worker.run(url_job(f"http://127.0.0.1:{port}/v.mp4"), allow_cidrs=LOOPBACK)
    assert_failed(run, ErrorCode.DOWNLOAD_FAILED, "cannot connect")


def test_unresolvable_host(worker: InProcess) -> None:
    run = worker.run(url_job("http://no-such-host.invalid/v.mp4"))
    assert_failed(run, ErrorCode.DOWNLOAD_FAILED, "cannot resolve")


def test_http_404(server: Server, worker: InProcess) -> None:
    run = worker.run(url_job(server.url("/missing.mp4")), allow_cidrs=LOOPBACK)
    assert_failed(run, ErrorCode.DOWNLOAD_FAILED, "HTTP 404")


def _slow_body(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Length", "100000")
    h.end_headers()
    h.wfile.write(b"\0" * 1000)
    h.wfile.flush()
    time.sleep(2)


def _slow_headers(h: BaseHTTPRequestHandler) -> None:
    time.sleep(2)


@pytest.mark.parametrize("handler", [_slow_body, _slow_headers])
def test_server_slower_than_timeout(handler, server: Server, worker: InProcess) -> None:  # type: ignore[no-untyped-def]
    server.routes["/slow.mp4"] = handler
    started = time.monotonic()
    run = worker.run(url_job(server.url("/slow.mp4")), allow_cidrs=LOOPBACK, read_timeout=0.5)
    assert_failed(run, ErrorCode.DOWNLOAD_FAILED, "timed out reading", "0.5 s")
    assert time.monotonic() - started < 1.8


def _big(declare_length: bool):  # type: ignore[no-untyped-def]
    def send(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        if declare_length:
            h.send_header("Content-Length", str(200_000))
        else:
            h.send_header("Connection", "close")  # body ends when the connection closes
            h.close_connection = True
        h.end_headers()
        for _ in range(20):
            h.wfile.write(b"\0" * 10_000)

    return send


@pytest.mark.parametrize("declare_length", [True, False])
def test_body_over_cap(declare_length: bool, server: Server, worker: InProcess) -> None:
    server.routes["/big.mp4"] = _big(declare_length)
    run = worker.run(url_job(server.url("/big.mp4")), allow_cidrs=LOOPBACK, max_source_bytes=50_000)
    assert_failed(run, ErrorCode.SOURCE_TOO_LARGE, "larger than the 50,000-byte limit")


BOMB_MIB = 512


@functools.cache
def _bomb(encoding: str) -> bytes:
    """``BOMB_MIB`` MiB of zeros, compressed as ``encoding`` says (layers applied left to right)."""

    def compress(data_chunks, wbits: int) -> bytes:  # type: ignore[no-untyped-def]
        c = zlib.compressobj(9, zlib.DEFLATED, wbits)
        return b"".join(c.compress(chunk) for chunk in data_chunks) + c.flush()

    layers = [e.strip() for e in encoding.split(",")]
    wbits = {"gzip": 31, "deflate": 15}
    data = compress((b"\0" * (1 << 20) for _ in range(BOMB_MIB)), wbits[layers[0]])
    for layer in layers[1:]:
        data = compress([data], wbits[layer])
    return data


def _encoded(encoding: str, body: bytes):  # type: ignore[no-untyped-def]
    def send(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "video/mp4")
        h.send_header("Content-Encoding", encoding)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return send


@pytest.mark.parametrize("encoding", ["gzip, gzip", "gzip", "deflate", "deflate, gzip"])
def test_compressed_answer_refused_with_memory_bounded(encoding: str, server: Server, run_process) -> None:  # type: ignore[no-untyped-def]
    """A few hundred bytes that decode to 512 MiB, against a 10 MB cap, although the worker asked
    for ``Accept-Encoding: identity``: refused before anything is decoded."""
    bomb = _bomb(encoding)
    assert len(bomb) < 600_000
    server.routes["/v.mp4"] = _encoded(encoding, bomb)
    run = run_process(url_job(server.url("/v.mp4")), allow_cidrs=LOOPBACK, max_source_bytes="10000000")
    assert run.peak_rss_mib < 100, f"worker peak RSS {run.peak_rss_mib:.0f} MiB"
    assert_failed(run, ErrorCode.DOWNLOAD_FAILED, "Content-Encoding", encoding)
    assert run.exit_code == EXIT_PERMANENT  # the server will encode it again on a retry
    assert [h.get("Accept-Encoding") for _, _, h, _ in server.hits] == ["identity"]


def test_unknown_content_encoding_refused(server: Server, worker: InProcess) -> None:
    server.routes["/v.mp4"] = _encoded("br", b"\x1b" * 100)
    run = worker.run(url_job(server.url("/v.mp4")), allow_cidrs=LOOPBACK)
    assert_failed(run, ErrorCode.DOWNLOAD_FAILED, "Content-Encoding", "br")


def test_identity_content_encoding_accepted(media: Media, server: Server, worker: InProcess) -> None:
    server.routes["/v.mp4"] = _encoded("Identity", media.aac_mp4.read_bytes())
    run = worker.run(url_job(server.url("/v.mp4")), allow_cidrs=LOOPBACK)
    assert run.result.output is not None, run.result.error


def _redirect(location: str):  # type: ignore[no-untyped-def]
    def send(h: BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return send


def test_redirect_to_loopback_not_allowlisted(media: Media, make_server, worker: InProcess) -> None:  # type: ignore[no-untyped-def]
    """Only 127.0.0.1 is allowlisted: a redirect to 127.0.0.2 (also loopback) is refused unvisited."""
    front, internal = make_server("127.0.0.1"), make_server("127.0.0.2")
    internal.file("/secret.mp4", media.aac_mp4)
    front.routes["/v.mp4"] = _redirect(internal.url("/secret.mp4"))
    run = worker.run(url_job(front.url("/v.mp4")), allow_cidrs="127.0.0.1/32")
    assert_failed(run, ErrorCode.DOWNLOAD_FAILED, "redirect target is not allowed", "127.0.0.2")
    assert internal.hits == [] and len(front.hits) == 1


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
        "http://[::1]:9/x",
        "http://10.1.2.3/",
        "gopher://127.0.0.1:9/",
    ],
)
def test_redirect_to_forbidden_targets(target: str, server: Server, worker: InProcess) -> None:
    server.routes["/v.mp4"] = _redirect(target)
    run = worker.run(url_job(server.url("/v.mp4")), allow_cidrs="127.0.0.1/32")
    assert_failed(run, ErrorCode.DOWNLOAD_FAILED, "redirect target is not allowed")


@pytest.mark.parametrize(("start", "allowed"), [(1, True), (0, False)])
def test_redirects_are_capped(
    start: int, allowed: bool, media: Media, server: Server, worker: InProcess
) -> None:
    server.file("/real.mp4", media.aac_mp4)
    for i in range(4):
        server.routes[f"/hop{i}"] = _redirect(f"/hop{i + 1}" if i < 3 else "/real.mp4")
    run = worker.run(url_job(server.url(f"/hop{start}")), allow_cidrs=LOOPBACK)  # 3 or 4 redirects
    if allowed:
        assert run.result.output is not None, run.result.error
        assert run.result.inputFile and run.result.inputFile.name == "hop1"
    else:
        assert_failed(run, ErrorCode.DOWNLOAD_FAILED, "too many redirects")


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "0177.0.0.1",
        "2130706433",
        "0x7f.1",
        "127.1",
        "0x7f000001",
        "[::ffff:127.0.0.1]",
        "localhost",
        "[::1]",
        "10.0.0.1",
        "169.254.169.254",
        "100.100.100.200",
        "[fd00:ec2::254]",
        "[64:ff9b::7f00:1]",
        "0.0.0.0",
    ],
)
def test_private_and_encoded_addresses_refused(
    host: str, media: Media, server: Server, worker: InProcess
) -> None:
    """No allowlist: every loopback/private/metadata form is refused and nothing is contacted."""
    server.file("/v.mp4", media.aac_mp4)
    run = worker.run(url_job(f"http://{host}:{server.port}/v.mp4"))  # default: deny private
    assert_failed(run, ErrorCode.DOWNLOAD_FAILED, "not allowed")
    assert server.hits == []


HLS = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n{segment}\n#EXT-X-ENDLIST\n"


@pytest.mark.parametrize("kind", ["internal_url", "local_file", "concat"])
def test_playlist_disguised_as_mp4_reads_nothing(
    kind: str, media: Media, make_server, worker: InProcess, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    front, internal = make_server("127.0.0.1"), make_server("127.0.0.1")
    secret = tmp_path / "secret.ts"
    secret.write_bytes(media.aac_mp4.read_bytes())  # real media: it would decode if it were read
    internal.file("/internal-admin/secret.ts", secret)
    text = {
        "internal_url": HLS.format(segment=internal.url("/internal-admin/secret.ts")),
        "local_file": HLS.format(segment=f"file://{secret}"),
        "concat": f"ffconcat version 1.0\nfile '{secret}'\n",
    }[kind]
    playlist = tmp_path / "video.mp4"
    playlist.write_text(text)
    url = front.file("/video.mp4", playlist)
    run = worker.run(url_job(url), allow_cidrs=LOOPBACK)  # the address guard is not what stops it
    assert_failed(run, ErrorCode.INVALID_VIDEO, "not allowed")
    assert internal.hits == []


def test_missing_and_oversized_uploads(media: Media, worker: InProcess) -> None:
    missing = worker.run(job_spec({"type": "upload", "file": "upl_00000000000000ff"}, {"format": "mp3"}))
    assert_failed(missing, ErrorCode.DOWNLOAD_FAILED, "not found")
    source = worker.upload(media.aac_mp4)
    big = worker.run(job_spec(source, {"format": "mp3"}), max_source_bytes=1000)
    assert big.result.error is not None and big.result.error.code == ErrorCode.SOURCE_TOO_LARGE


def test_audio_longer_than_the_limit(media: Media, worker: InProcess) -> None:
    """Decoded audio dwarfs its source (an hour of silence: 600 KB of FLAC, 690 MB of WAV)."""
    source = worker.upload(media.pcm_mkv)  # 3 s
    long = worker.run(job_spec(source, {"format": "wav"}), max_source_seconds=2)
    assert_failed(long, ErrorCode.SOURCE_TOO_LARGE, "2-second limit", "3 s of audio")
    assert long.result.permanent
    assert long.result.inputFile is not None  # probed, then refused before any ffmpeg run
    trimmed = worker.run(job_spec(source, {"format": "wav", "trim": {"end": 1.5}}), max_source_seconds=2)
    assert trimmed.result.output is not None, trimmed.result.error


def lying_flac(tmp_path: Path, seconds: int, claimed: int) -> Path:
    """Silence whose STREAMINFO claims ``claimed`` seconds: ffprobe believes it, the decoder does not."""
    path = tmp_path / "lying.flac"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo", "-t", str(seconds), "-c:a", "flac", str(path))
    data = bytearray(path.read_bytes())
    fields = slice(18, 26)  # sample rate, channels, bits and the 36-bit sample count of STREAMINFO
    packed = int.from_bytes(data[fields], "big") & ~((1 << 36) - 1) | claimed * 48000
    data[fields] = packed.to_bytes(8, "big")
    path.write_bytes(data)
    return path


def test_output_over_the_size_cap_is_no_result(tmp_path: Path, worker: InProcess) -> None:
    """The duration check trusts the probe; -fs bounds what a source that lies about it can write."""
    source = worker.upload(lying_flac(tmp_path, seconds=60, claimed=1))  # 11.5 MB as WAV
    run = worker.run(job_spec(source, {"format": "wav"}), max_source_seconds=10, max_output_bytes=2_000_000)
    assert_failed(run, ErrorCode.SOURCE_TOO_LARGE, "2,000,000-byte output limit")
    assert run.result.permanent
