"""Faults injected into a real operator process, for the cluster tests.

The product takes its fault points as callables (``Driver.after_attempts``: called after a round of
webhook delivery attempts, before their outcomes are recorded); this launcher sets one and runs the
operator exactly as ``python -m audio_extract_operator`` does:

    python -m support.faults crash-after-send MARKER

SIGKILLs the operator right after its first delivery attempts, before it records them, once: the
marker file is created first, so the restarted operator runs normally.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def crash_once(marker: Path) -> Callable[[], None]:
    """SIGKILL this process the first time it is called (while ``marker`` does not exist)."""

    def crash() -> None:
        if not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)

    return crash


def run_operator(after_attempts: Callable[[], None]) -> None:
    from audio_extract_operator import __main__ as operator_main
    from audio_extract_operator import deliveries

    install = deliveries.install

    def install_with_fault(*args: Any, **kwargs: Any) -> Any:
        pump = install(*args, **kwargs)
        pump.driver.after_attempts = after_attempts
        return pump

    deliveries.install = install_with_fault  # type: ignore[assignment]
    operator_main.main()


def main(argv: list[str]) -> None:
    match argv:
        case ["crash-after-send", marker]:
            run_operator(crash_once(Path(marker)))
        case _:
            sys.exit("usage: python -m support.faults crash-after-send MARKER")


if __name__ == "__main__":
    main(sys.argv[1:])
