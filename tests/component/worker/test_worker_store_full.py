"""A full store is not the job's fault: when the store fills while ffmpeg writes the
output, the worker exits as a transient failure (the Job retries it, the podFailurePolicy does not
fail it at once), says so in its result, and leaves no partial output behind.

The store is a real, really full filesystem: a 64 KiB tmpfs mounted over the test's store
directory, so ffmpeg's own writes get ENOSPC from the kernel mid-file (needs root to mount)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from audio_extract_common.batch_status import ErrorCode
from audio_extract_common.results import EXIT_TRANSIENT
from support.loopback_servers import Server
from support.media_files import Media
from support.worker_runs import job_spec

LOOPBACK = "127.0.0.0/8"
STORE_BYTES = 64 * 1024
"""Far below a WAV of the test source (48 kHz stereo, 3 s: ~560 KiB): the write fails mid-file."""


@pytest.fixture
def full_store(workdirs: tuple[Path, Path]) -> Iterator[Path]:
    store = workdirs[0]
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={STORE_BYTES}", "tmpfs", str(store)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield store
    finally:
        subprocess.run(["umount", str(store)], check=True)


def test_a_store_filling_up_mid_write_is_a_transient_failure(
    media: Media, server: Server, full_store: Path, run_process
) -> None:  # type: ignore[no-untyped-def]
    url = server.file("/clip.mkv", media.pcm_mkv)
    run = run_process(job_spec({"type": "url", "url": url}, {"format": "wav"}), allow_cidrs=LOOPBACK)
    error = run.result.error
    assert error is not None and run.result.output is None, run.result
    assert run.exit_code == EXIT_TRANSIENT, (run.exit_code, error)
    assert error.code == ErrorCode.INTERNAL_ERROR, error
    assert "store is full" in error.message, error
    assert "No space left on device" in (error.details or ""), error
    assert run.store_files() == [], "no partial output left to fill the store further"
    assert run.scratch_files() == []
