"""What ``python -m audio_extract_worker`` loads before it first runs ffprobe, for a job from the
store volume: every module imported there delays each job, so the HTTP clients, the address
guard, the object store and pydantic-settings load only for the jobs that use them (URL sources,
presigned stores). Checked by module name in ``sys.modules``, never by timing; the figures are in
docs/benchmarks.md ("Worker start-up"). Also the progress reporter's light HTTP transport.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from audio_extract_common.batch_status import Step
from audio_extract_worker.progress import ProgressReporter
from support.loopback_servers import Server
from support.media_files import Media
from support.worker_runs import JOB_ID, job_spec, upload

NEVER_FROM_THE_STORE = (
    "httpx",
    "httpcore",
    "h11",
    "anyio",
    "aiohttp",
    "asyncio",
    "pydantic_settings",
    "dotenv",
    "kubernetes_asyncio",
    "kopf",
    "botocore",
    "boto3",
    "rich",
    "click",
    "audio_extract_common.httpx_guard",
    "audio_extract_common.aiohttp_guard",
    "audio_extract_common.objectstore",
    "audio_extract_common.storage",
    "audio_extract_worker.fetch",
    "audio_extract_worker.presigned",
)
"""Never imported by a job whose source and output are on the store volume."""
NETWORK = ("http.client", "ssl")
"""Only the progress reporter's thread needs these, so not before the first ffprobe without it."""

# Runs the worker as ``python -m`` does, noting sys.modules at its first exec and at its exit
# (``os._exit``: the worker skips the interpreter's teardown).
DRIVER = """
import json, os, runpy, subprocess, sys
notes = []
def save():
    notes.append({"modules": sorted(sys.modules)})
    with open(sys.argv[1], "w") as f:
        json.dump(notes, f)
popen = subprocess.Popen.__init__
def noted(self, args, *rest, **kwargs):
    if not notes:
        notes.append({"argv0": args[0], "modules": sorted(sys.modules)})
    popen(self, args, *rest, **kwargs)
subprocess.Popen.__init__ = noted
exit_now = os._exit
def noted_exit(code):
    save()
    exit_now(code)
os._exit = noted_exit
try:
    runpy.run_module("audio_extract_worker", run_name="__main__", alter_sys=True)
finally:
    save()
"""


def loaded(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(f"{p}.") for p in packages)]


def run_noting_modules(
    source: Path, store: Path, scratch: Path, tmp_path: Path, **env: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A copy job (AAC in MP4 → .aac) from the store; the modules at the first exec and at exit."""
    spec = job_spec(upload(store, source), {"format": "aac", "quality": "medium"})
    notes = tmp_path / "modules.json"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AUDIO_EXTRACT_WORKER_")}
    environ.update(
        {
            "AUDIO_EXTRACT_WORKER_JOB": json.dumps(spec),
            "AUDIO_EXTRACT_WORKER_STORE_ROOT": str(store),
            "AUDIO_EXTRACT_WORKER_SCRATCH_DIR": str(scratch),
            "AUDIO_EXTRACT_WORKER_RESULT_PATH": str(tmp_path / "result.json"),
            **{f"AUDIO_EXTRACT_WORKER_{k.upper()}": v for k, v in env.items()},
        }
    )
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(notes)],
        env=environ,
        capture_output=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["output"]["transcoded"] is False, result  # the stream-copy fast path
    first, end = json.loads(notes.read_text())
    return first, end


def test_a_job_from_the_store_reaches_ffprobe_without_the_network_stacks(
    media: Media, workdirs: tuple[Path, Path], tmp_path: Path
) -> None:
    first, end = run_noting_modules(media.aac_mp4, *workdirs, tmp_path)
    assert first["argv0"] == "ffprobe"  # even the copy path probes first: the codec decides it
    assert loaded(first["modules"], NEVER_FROM_THE_STORE + NETWORK) == []
    assert loaded(end["modules"], NEVER_FROM_THE_STORE + NETWORK) == []
    assert "pydantic" in first["modules"] and "audio_extract_worker.job" in first["modules"]  # it did look


def test_progress_reports_take_no_http_client_library(
    media: Media, workdirs: tuple[Path, Path], tmp_path: Path, server: Server
) -> None:
    received: list[bytes] = []

    def sink(h: BaseHTTPRequestHandler) -> None:
        received.append(server.hits[-1][3])
        h.send_response(204)
        h.send_header("Content-Length", "0")
        h.end_headers()

    server.routes["/progress"] = sink
    first, end = run_noting_modules(
        media.aac_mp4,
        *workdirs,
        tmp_path,
        progress_url=server.url("/progress"),
        progress_token="t",
        log_format="json",
    )
    assert loaded(first["modules"], NEVER_FROM_THE_STORE) == []
    assert loaded(end["modules"], NEVER_FROM_THE_STORE) == []
    reports = [json.loads(body) for body in received]
    assert reports and reports[-1]["step"] == Step.finalizing and reports[-1]["progress"] == 100
    assert {r["jobId"] for r in reports} == {JOB_ID}


def test_progress_reporter_reconnects_when_the_endpoint_drops_an_idle_connection(server: Server) -> None:
    """A server may close a kept-alive connection without saying so; the next report goes out on a
    new one instead of being lost."""
    received: list[bytes] = []

    def close_after_answering(h: BaseHTTPRequestHandler) -> None:
        received.append(server.hits[-1][3])
        h.send_response(204)
        h.send_header("Content-Length", "0")
        h.end_headers()
        h.close_connection = True

    server.routes["/progress"] = close_after_answering
    reporter = ProgressReporter(JOB_ID, server.url("/progress"), "t", interval=0)
    try:
        for n in range(3):
            reporter.report(Step.extracting_audio, 10 * n)
            deadline = time.monotonic() + 5
            while len(received) <= n and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.05)  # the server has closed its end by now
    finally:
        reporter.close()
    assert [json.loads(body)["progress"] for body in received] == [0, 10, 20]
    assert (reporter.sent, reporter.failed) == (3, 0)
