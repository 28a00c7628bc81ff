"""Run a command in a pseudo-terminal and read its screen as a person would see it (``pyte``).

The command gets a real terminal (a pty of ``columns`` x ``lines``, ``TERM=xterm-256color``), so it
draws what it draws for people: colours, live bars redrawn in place. Every output chunk is fed to a
``pyte`` screen; ``screens`` keeps each distinct screen seen, so a test can check what was shown
while the command ran (a bar) and at its end (a table). ``replies`` answer prompts: when the screen
shows the text, the bytes are typed (``"\\x03"`` is Ctrl-C through the terminal's line discipline).
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import termios
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pyte


@dataclass
class Terminal:
    exit_code: int
    screen: list[str]
    screens: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen).strip("\n")


def run_in_terminal(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    replies: Sequence[tuple[str, bytes]] = (),
    columns: int = 120,
    lines: int = 40,
    timeout: float = 60,
    cwd: str | os.PathLike[str] | None = None,
) -> Terminal:
    screen = pyte.Screen(columns, lines)
    stream = pyte.ByteStream(screen)
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal
        if cwd is not None:
            os.chdir(cwd)
        os.execvpe(
            argv[0],
            list(argv),
            {**env, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(lines)},
        )
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    pending = list(replies)
    screens: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                stream.feed(data)
                shown = "\n".join(screen.display)
                if not screens or screens[-1] != shown:
                    screens.append(shown)
                if pending and pending[0][0] in shown:
                    os.write(fd, pending.pop(0)[1])
        else:
            os.kill(pid, signal.SIGKILL)
            raise TimeoutError(
                f"{argv} still running after {timeout} s; screen:\n" + "\n".join(screen.display)
            )
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return Terminal(os.waitstatus_to_exitcode(status), list(screen.display), screens)
