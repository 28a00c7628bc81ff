"""How an ffmpeg run that dies by a signal is classified (a stand-in process takes ffmpeg's place)."""

from __future__ import annotations

import pytest

from audio_extract_common.batch_status import ErrorCode
from audio_extract_common.results import EXIT_INTERNAL, EXIT_PERMANENT, exit_code_for
from audio_extract_worker.errors import JobFailure
from audio_extract_worker.ffmpeg_run import run_ffmpeg


def _dies_by(signal_name: str) -> JobFailure:
    with pytest.raises(JobFailure) as caught:
        run_ffmpeg(["sh", "-c", f"echo decoding >&2; kill -{signal_name} $$"], timeout=30)
    return caught.value


def test_sigkill_is_not_blamed_on_the_file() -> None:
    """The cgroup OOM killer sends SIGKILL: a retry (or more memory) can succeed."""
    failure = _dies_by("KILL")
    assert failure.code == ErrorCode.INTERNAL_ERROR
    assert "SIGKILL" in failure.message and "memory" in failure.message
    assert not failure.permanent
    assert exit_code_for(failure.code, failure.permanent, failure.transient) == EXIT_INTERNAL
    assert failure.details == "decoding"


@pytest.mark.parametrize("signal_name", ["SEGV", "ABRT"])
def test_a_crash_stays_permanent(signal_name: str) -> None:
    """A decoder crashing on a crafted file crashes again on every retry."""
    failure = _dies_by(signal_name)
    assert failure.code == ErrorCode.EXTRACTION_FAILED
    assert failure.message == f"ffmpeg crashed (SIG{signal_name})"
    assert exit_code_for(failure.code, failure.permanent, failure.transient) == EXIT_PERMANENT


def test_a_plain_failure_keeps_its_exit_code() -> None:
    with pytest.raises(JobFailure) as caught:
        run_ffmpeg(["sh", "-c", "exit 1"], timeout=30)
    assert caught.value.code == ErrorCode.EXTRACTION_FAILED
    assert caught.value.message == "ffmpeg failed (exit code 1)"
