"""``python -m audio_extract_worker`` as the Job runs it: environment in, result file and exit code out."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from audio_extract_common.batch_status import ErrorCode, Step
from audio_extract_common.results import EXIT_OK, EXIT_PERMANENT, EXIT_TRANSIENT, ProgressReport
from support.loopback_servers import Server
from support.media_files import Media
from support.worker_runs import JOB_ID, job_spec

LOOPBACK = "127.0.0.0/8"


def test_success_writes_result_and_exits_zero(media: Media, server: Server, run_process) -> None:  # type: ignore[no-untyped-def]
    url = server.file("/media/My%20Clip.mp4", media.aac_mp4)
    run = run_process(
        job_spec({"type": "url", "url": url}, {"format": "ogg", "quality": "low"}), allow_cidrs=LOOPBACK
    )
    assert run.exit_code == EXIT_OK, run.stderr
    out = run.result.output
    assert out is not None and out.filename == "My Clip.ogg" and out.path == f"{JOB_ID}/My Clip.ogg"
    assert out.size == (run.store / out.path).stat().st_size and out.format == "ogg" and out.transcoded
    assert re.fullmatch(r"\d+k", out.bitrate or "")
    assert run.result.inputFile and run.result.inputFile.name == "My Clip.mp4"
    assert run.result.inputFile.format == "mov,mp4,m4a,3gp,3g2,mj2"
    assert len(run.result_text.encode()) < 4096
    assert run.scratch_files() == []


def test_the_result_times_each_step(media: Media, server: Server, run_process) -> None:  # type: ignore[no-untyped-def]
    """Download, probe, encode and store seconds reach the operator (its metrics) in the result; a
    failure times the steps it reached, the failing one included."""
    url = server.file("/media/clip.mp4", media.aac_mp4)
    run = run_process(job_spec({"type": "url", "url": url}, {"format": "mp3"}), allow_cidrs=LOOPBACK)
    assert run.exit_code == EXIT_OK, run.stderr
    timings = run.result.timings
    assert timings is not None, run.result_text
    steps = (timings.download, timings.probe, timings.encode, timings.store)
    assert all(s is not None and s >= 0 for s in steps), timings
    assert timings.encode > 0 and timings.probe > 0  # type: ignore[operator]
    assert json.loads(run.result_text)["timings"].keys() == {"download", "probe", "encode", "store"}

    server.file("/video-only.mp4", media.video_only)
    spec = job_spec({"type": "url", "url": server.url("/video-only.mp4")}, {"format": "mp3"})
    failed = run_process(spec, allow_cidrs=LOOPBACK)
    assert failed.result.error is not None and failed.result.error.code == ErrorCode.NO_AUDIO_STREAM
    assert failed.result.timings is not None and failed.result.timings.download is not None
    assert failed.result.timings.probe is not None and failed.result.timings.encode is None


def test_json_log_lines_name_the_job_its_batch_and_tenant(media: Media, server: Server, run_process) -> None:  # type: ignore[no-untyped-def]
    server.file("/video-only.mp4", media.video_only)
    spec = job_spec({"type": "url", "url": server.url("/video-only.mp4")}, {"format": "mp3"})
    run = run_process(spec, allow_cidrs=LOOPBACK, log_format="json", tenant="acme-media")
    lines = [json.loads(line) for line in run.stderr.splitlines() if line.strip()]
    assert lines, run.stderr
    for line in lines:
        assert (line["jobId"], line["batchId"], line["tenant"]) == (JOB_ID, spec["batchId"], "acme-media"), (
            line
        )
    assert any("NO_AUDIO_STREAM" in line["message"] for line in lines), lines
    text = run_process(spec, allow_cidrs=LOOPBACK)  # the default: lines for people
    assert text.stderr and not text.stderr.lstrip().startswith("{")


def _status(code: int):  # type: ignore[no-untyped-def]
    def send(h: BaseHTTPRequestHandler) -> None:
        h.send_response(code)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return send


def _redirect(location: str):  # type: ignore[no-untyped-def]
    def send(h: BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return send


@pytest.mark.parametrize(
    ("path", "code", "exit_code"),
    [
        ("/video-only.mp4", ErrorCode.NO_AUDIO_STREAM, EXIT_PERMANENT),
        # The same request would get the same answer: fail at once (the Job's podFailurePolicy).
        ("/missing.mp4", ErrorCode.DOWNLOAD_FAILED, EXIT_PERMANENT),
        ("/status/410", ErrorCode.DOWNLOAD_FAILED, EXIT_PERMANENT),
        ("/status/403", ErrorCode.DOWNLOAD_FAILED, EXIT_PERMANENT),
        ("/loop", ErrorCode.DOWNLOAD_FAILED, EXIT_PERMANENT),  # too many redirects
        ("/to-metadata", ErrorCode.DOWNLOAD_FAILED, EXIT_PERMANENT),  # blocked redirect target
        ("/to-ftp", ErrorCode.DOWNLOAD_FAILED, EXIT_PERMANENT),
        ("http://10.0.0.1:9/v.mp4", ErrorCode.DOWNLOAD_FAILED, EXIT_PERMANENT),  # blocked address
        # The server or the network may be better next time: retried by the Job's backoffLimit.
        ("/status/503", ErrorCode.DOWNLOAD_FAILED, EXIT_TRANSIENT),
        ("/status/429", ErrorCode.DOWNLOAD_FAILED, EXIT_TRANSIENT),
        ("/status/408", ErrorCode.DOWNLOAD_FAILED, EXIT_TRANSIENT),
        ("closed-port", ErrorCode.DOWNLOAD_FAILED, EXIT_TRANSIENT),
    ],
)
def test_failure_exit_codes(
    path: str, code: ErrorCode, exit_code: int, media: Media, server: Server, make_server, run_process
) -> None:  # type: ignore[no-untyped-def]
    server.file("/video-only.mp4", media.video_only)
    for status in (403, 408, 410, 429, 503):
        server.routes[f"/status/{status}"] = _status(status)
    server.routes["/loop"] = _redirect("/loop")
    server.routes["/to-metadata"] = _redirect("http://169.254.169.254/latest/meta-data/")
    server.routes["/to-ftp"] = _redirect("ftp://example.com/v.mp4")
    if path == "closed-port":
        gone = make_server()
        url = gone.url("/v.mp4")
        gone.stop()
    else:
        url = path if "://" in path else server.url(path)
    spec = job_spec({"type": "url", "url": url}, {"format": "mp3"})
    run = run_process(spec, allow_cidrs=LOOPBACK)
    assert run.result.error is not None and run.result.error.code == code
    assert run.exit_code == exit_code, run.result.error
    assert run.store_files() == []


def test_missing_upload_is_permanent(run_process) -> None:  # type: ignore[no-untyped-def]
    """An upload that is not in the store (expired, deleted) will not appear on a retry."""
    run = run_process(job_spec({"type": "upload", "file": "upl_00000000000000ff"}, {"format": "mp3"}))
    assert run.result.error is not None and run.result.error.code == ErrorCode.DOWNLOAD_FAILED
    assert run.exit_code == EXIT_PERMANENT


def test_invalid_output_rejected_before_download(server: Server, run_process) -> None:  # type: ignore[no-untyped-def]
    spec = job_spec({"type": "url", "url": server.url("/v.mp4")}, {"format": "flac", "bitrate": "192k"})
    run = run_process(spec, allow_cidrs=LOOPBACK)
    assert run.exit_code == EXIT_PERMANENT
    assert run.result.error and run.result.error.code == ErrorCode.EXTRACTION_FAILED
    assert "invalid output settings" in run.result.error.message
    assert "lossless" in (run.result.error.details or "")
    assert server.hits == []


def test_malformed_job_spec(run_process) -> None:  # type: ignore[no-untyped-def]
    run = run_process("{not json")
    assert run.exit_code == EXIT_PERMANENT
    assert run.result.error and run.result.error.code == ErrorCode.INTERNAL_ERROR


def _progress_sink(server: Server, status: int = 204) -> list[tuple[float, dict[str, str], bytes]]:
    received: list[tuple[float, dict[str, str], bytes]] = []

    def sink(h: BaseHTTPRequestHandler) -> None:
        received.append((time.monotonic(), dict(h.headers), server.hits[-1][3]))
        h.send_response(status)
        h.send_header("Content-Length", "0")
        h.end_headers()

    server.routes["/progress"] = sink
    return received


def test_progress_reports(media: Media, server: Server, run_process) -> None:  # type: ignore[no-untyped-def]
    received = _progress_sink(server)
    url = server.file("/v.mp4", media.aac_mp4)
    spec = job_spec({"type": "url", "url": url}, {"format": "mp3", "normalize": True})
    run = run_process(
        spec,
        allow_cidrs=LOOPBACK,
        progress_url=server.url("/progress"),
        progress_token="tok-123",
        progress_interval="0.1",
    )
    assert run.exit_code == EXIT_OK, run.stderr
    assert len(received) >= 2
    reports = [ProgressReport.model_validate_json(body) for _, _, body in received]
    assert all(h.get("Authorization") == "Bearer tok-123" for _, h, _ in received)
    assert all(r.jobId == JOB_ID for r in reports)
    order = list(Step)
    steps = [order.index(Step(r.step)) for r in reports]
    assert steps == sorted(steps), "steps only move forward"
    assert (reports[-1].step, reports[-1].progress) == (Step.finalizing, 100)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(received)]
    assert min(gaps[:-1], default=1) >= 0.08, gaps  # throttled to the interval (the final flush is not held)
    assert any(r.inputFile and r.inputFile.duration for r in reports)


@pytest.mark.parametrize("broken", ["500", "closed"])
def test_failing_progress_endpoint_never_fails_the_job(
    broken: str, media: Media, server: Server, make_server, run_process
) -> None:  # type: ignore[no-untyped-def]
    if broken == "500":
        _progress_sink(server, status=500)
        progress_url = server.url("/progress")
    else:
        gone = make_server()
        progress_url = gone.url("/progress")
        gone.stop()
    url = server.file("/v.mp4", media.aac_mp4)
    run = run_process(
        job_spec({"type": "url", "url": url}, {"format": "aac"}),
        allow_cidrs=LOOPBACK,
        progress_url=progress_url,
        progress_token="t",
    )
    assert run.exit_code == EXIT_OK and run.result.output is not None


def test_sigterm_stops_cleanly(server: Server, workdirs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store, scratch = workdirs
    started = []

    def trickle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(10_000_000))
        h.end_headers()
        started.append(True)
        for _ in range(100):
            h.wfile.write(b"\0" * 1000)
            h.wfile.flush()
            time.sleep(0.05)

    server.routes["/v.mp4"] = trickle
    result_path = tmp_path / "result"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AUDIO_EXTRACT_WORKER_")},
        "AUDIO_EXTRACT_WORKER_JOB": json.dumps(
            job_spec({"type": "url", "url": server.url("/v.mp4")}, {"format": "mp3"})
        ),
        "AUDIO_EXTRACT_WORKER_STORE_ROOT": str(store),
        "AUDIO_EXTRACT_WORKER_SCRATCH_DIR": str(scratch),
        "AUDIO_EXTRACT_WORKER_RESULT_PATH": str(result_path),
        "AUDIO_EXTRACT_WORKER_ALLOW_CIDRS": LOOPBACK,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "audio_extract_worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not started and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 143
    result = json.loads(result_path.read_text())
    assert result["error"]["code"] == "CANCELLED"
    assert list(scratch.rglob("*")) == [] and list(store.rglob("*")) == []


def _huge_wav(total_bytes: int, channels: int = 8, rate: int = 192000, bits: int = 32):  # type: ignore[no-untyped-def]
    """A WAV of ``total_bytes`` (silence), streamed without ever existing in memory or on disk."""
    data_size = total_bytes - 44
    block = channels * bits // 8
    header = (
        b"RIFF"
        + struct.pack("<I", 36 + data_size)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, bits)
        + b"data"
        + struct.pack("<I", data_size)
    )
    zeros = b"\0" * (1 << 20)

    def send(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(total_bytes))
        h.end_headers()
        h.wfile.write(header)
        left = data_size
        while left > 0:
            n = min(left, len(zeros))
            h.wfile.write(zeros[:n])
            left -= n

    return send, data_size / (rate * block)


@pytest.mark.slow
def test_peak_memory_with_a_1_gib_source(server: Server, run_process) -> None:  # type: ignore[no-untyped-def]
    """The worker's own peak RSS stays under 100 MiB while it fetches and extracts 1 GiB."""
    send, seconds = _huge_wav(1 << 30)
    server.routes["/big.wav"] = send
    started = time.monotonic()
    spec = job_spec({"type": "url", "url": server.url("/big.wav")}, {"format": "opus", "quality": "low"})
    run = run_process(spec, timeout=300, allow_cidrs=LOOPBACK)
    elapsed = time.monotonic() - started
    assert run.exit_code == EXIT_OK, run.stderr[-2000:]
    assert run.result.inputFile and run.result.inputFile.size == 1 << 30
    assert abs((run.result.output.duration or 0) - seconds) <= 0.1  # type: ignore[union-attr]
    peak_mib = run.peak_rss_mib
    print(
        f"\nworker peak RSS {peak_mib:.1f} MiB for a 1 GiB source ({seconds:.0f} s of 8-ch 192 kHz audio), "
        f"{elapsed:.1f} s end to end"
    )
    assert peak_mib < 100
