"""Run one ffmpeg command: progress from ``-progress pipe:1``, a time limit, a bounded stderr tail."""

from __future__ import annotations

import collections
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass

from audio_extract_common.batch_status import ErrorCode

from .errors import OUT_OF_SPACE_TEXTS, JobFailure, out_of_space

STDERR_LINES = 60


@dataclass(frozen=True)
class FfmpegRun:
    stderr: str
    """The last lines of ffmpeg's log."""
    out_seconds: float | None
    """The last ``out_time_us`` reported: the output's duration once ffmpeg has finished."""


def run_ffmpeg(
    args: list[str], timeout: float, on_time: Callable[[float], None] = lambda seconds: None
) -> FfmpegRun:
    """Run ``args``; call ``on_time`` with the output position in seconds; return stderr's tail.

    ``out_time_us`` is parsed (``out_time_ms`` is microseconds too, trac #7345, and early
    blocks can be negative). Raises JobFailure(TIMEOUT) past ``timeout`` seconds and
    JobFailure(EXTRACTION_FAILED) on a non-zero exit, with ffmpeg's last lines as details
    (:func:`killed` for a death by signal).
    """
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
    timed_out = threading.Event()
    last: float | None = None
    with subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        drain = threading.Thread(target=_drain, args=(proc.stderr, tail), daemon=True)
        drain.start()

        def expire() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                key, _, value = raw.decode(errors="replace").strip().partition("=")
                if key == "out_time_us":
                    try:
                        micros = int(value)
                    except ValueError:
                        continue
                    if micros >= 0:
                        last = micros / 1e6
                        on_time(last)
            proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:  # an exception (SIGTERM) while ffmpeg runs: never leave it behind
                proc.kill()
                proc.wait()
            drain.join(5)
    stderr = "\n".join(tail)
    if timed_out.is_set():
        raise JobFailure(ErrorCode.TIMEOUT, f"ffmpeg took longer than {timeout:g} s")
    if proc.returncode != 0:
        lines = [line for line in tail if line.strip()][-8:]
        if any(text in line for line in lines for text in OUT_OF_SPACE_TEXTS):
            raise out_of_space("store", "\n".join(lines))  # only the output is written to a disk
        if proc.returncode < 0:
            raise killed(-proc.returncode, "\n".join(lines) or None)
        raise JobFailure(
            ErrorCode.EXTRACTION_FAILED,
            f"ffmpeg failed (exit code {proc.returncode})",
            "\n".join(lines) or None,
        )
    return FfmpegRun(stderr, last)


CRASH_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE, signal.SIGILL})
"""Signals ffmpeg raises itself: a decoder crashing on a crafted file fails the same way every time."""


def killed(number: int, details: str | None) -> JobFailure:
    """ffmpeg ended by signal ``number``. A crash is the input's doing (permanent, like a decoding
    error); any other signal came from outside, most often SIGKILL from the kernel's OOM killer at
    the container's memory limit, which says nothing about the file: an INTERNAL_ERROR, retried."""
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    if number in CRASH_SIGNALS:
        return JobFailure(ErrorCode.EXTRACTION_FAILED, f"ffmpeg crashed ({name})", details)
    cause = " (most likely out of memory)" if number == signal.SIGKILL else ""
    return JobFailure(ErrorCode.INTERNAL_ERROR, f"ffmpeg was killed by {name}{cause}", details)


def _drain(stream, tail: collections.deque[str]) -> None:  # type: ignore[no-untyped-def]
    for raw in stream:
        tail.append(raw.decode(errors="replace").rstrip())
