"""Fixtures for the worker's component tests: media generated with real ffmpeg
(``support.media_files``), real HTTP and HTTPS servers on loopback and a test CA
(``support.loopback_servers``), and a job run in process or as ``python -m audio_extract_worker``
(``support.worker_runs``).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from audio_extract_common.results import WorkerResult
from support.loopback_servers import Server, TestCA
from support.media_files import Media
from support.worker_runs import InProcess, ProcessRun


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    return Media(tmp_path_factory.mktemp("media"))


@pytest.fixture
def test_ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path)


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


@pytest.fixture
def workdirs(tmp_path: Path) -> tuple[Path, Path]:
    store, scratch = tmp_path / "store", tmp_path / "scratch"
    store.mkdir()
    scratch.mkdir()
    return store, scratch


@pytest.fixture
def worker(workdirs: tuple[Path, Path]) -> InProcess:
    return InProcess(*workdirs)


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
