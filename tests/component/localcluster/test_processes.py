"""The supervisor's crash-and-restart of one component, with real processes."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from audio_extract_localcluster.processes import Component, Supervisor

# A component that starts a child in its own session (as containerd starts its shims) and
# writes the child's pid; both live until killed.
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead
        return stat.read().split()[2] != "Z"


def test_kill_and_restart_keeps_the_place_and_spares_children_in_their_own_session(tmp_path: Path) -> None:
    child_pid_file = tmp_path / "child"
    supervisor = Supervisor(tmp_path / "logs")
    first = Component("first", [sys.executable, "-c", "import time; time.sleep(60)"])
    runtime = Component(
        "runtime", [sys.executable, "-c", PARENT, str(child_pid_file)], ready=child_pid_file.exists
    )
    last = Component("last", [sys.executable, "-c", "import time; time.sleep(60)"])
    supervisor.start_together([first, runtime, last])
    child = int(child_pid_file.read_text())
    try:
        old = supervisor.find("runtime")
        assert old is not None
        child_pid_file.unlink()  # the restarted one writes it again when ready
        supervisor.kill_and_restart("runtime")
        new = supervisor.find("runtime")
        assert new is not None and new.pid != old.pid and new.alive()
        assert old.proc.returncode == -signal.SIGKILL
        assert [p.spec.name for p in supervisor.running] == ["first", "runtime", "last"]
        assert alive(child)  # the old instance's child outlived it
        with pytest.raises(KeyError):
            supervisor.kill_and_restart("missing")
    finally:
        supervisor.stop_all()
        for pid in (child, int(child_pid_file.read_text()) if child_pid_file.exists() else 0):
            if pid:
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)
