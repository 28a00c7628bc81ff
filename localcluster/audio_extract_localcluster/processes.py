"""Child processes of the local cluster: started in their own process group, logged to a file,
stopped with TERM then KILL, and never left behind.

A `Component` is the spec of one long-running process (name, argv, env, a ready check); the
`Supervisor` starts a list of them in order, waiting for each to be ready, and stops them in
reverse order. `make dev` and the test fixtures use the same mechanism for the control plane, the
node and, in tests, the operator.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # If the Python process that started us is killed outright (SIGKILL, OOM), atexit never runs:
    # the kernel then sends SIGTERM to the child, so no control-plane process outlives its owner.
    # (Linux ties this to the *thread* that started the child: start children from a thread that
    # outlives them, e.g. the main thread.)
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Component:
    name: str
    argv: Sequence[str]
    env: dict[str, str] | None = None  # None: inherit this process's environment
    ready: Callable[[], bool] | None = None  # None: ready as soon as it runs
    ready_timeout: float = 60.0
    stop_timeout: float = 10.0  # seconds between TERM and KILL
    cwd: Path | None = None
    # facts for the status line (e.g. "url"); for `make dev` also "env" (dict exported in
    # .local/dev.env) and "hint" (a line printed once everything is up)
    extra: dict = field(default_factory=dict)


class ComponentFailed(RuntimeError):
    pass


class ManagedProcess:
    def __init__(self, spec: Component, log_path: Path) -> None:
        self.spec = spec
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            list(spec.argv),
            env=spec.env,
            cwd=spec.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: TERM/KILL reach grandchildren too
            preexec_fn=die_with_parent,
        )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, deadline: float) -> float:
        """Seconds from launch to ready; raises ComponentFailed if it exits or times out first."""
        while True:
            if not self.alive():
                raise ComponentFailed(
                    f"{self.spec.name} exited with {self.proc.returncode}; log {self.log_path}:\n"
                    + self.log_tail()
                )
            try:
                if self.spec.ready is None or self.spec.ready():
                    return time.monotonic() - self.started
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise ComponentFailed(
                    f"{self.spec.name} not ready after {self.spec.ready_timeout:.0f} s; "
                    f"log {self.log_path}:\n" + self.log_tail()
                )
            time.sleep(0.1)

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stop(self) -> int | None:
        """TERM the process group, KILL it after the stop timeout; returns the exit code."""
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(self.spec.stop_timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait()
        # the leader may be gone while the group lives on (a child that ignored TERM)
        self.signal(signal.SIGKILL)
        self._log.close()
        return self.proc.returncode


class Supervisor:
    """Starts components in order (each ready before the next, or a group together), stops them in
    reverse order."""

    def __init__(self, log_dir: Path, report: Callable[[str], None] | None = None) -> None:
        self.log_dir = log_dir
        self.report = report or (lambda line: None)
        self.running: list[ManagedProcess] = []
        self._atexit = False

    def start(self, spec: Component) -> ManagedProcess:
        return self.start_together([spec])[0]

    def start_together(self, specs: list[Component]) -> list[ManagedProcess]:
        """Launch `specs` at once (none needs another of them to be ready), then wait for each."""
        if not self._atexit:
            atexit.register(self.stop_all)  # tests that crash still leave no processes behind
            self._atexit = True
        procs = []
        for spec in specs:
            procs.append(ManagedProcess(spec, self.log_dir / f"{spec.name}.log"))
            self.running.append(procs[-1])
        for proc in procs:
            took = proc.wait_ready(proc.started + proc.spec.ready_timeout)
            detail = " ".join(f"{k}={v}" for k, v in proc.spec.extra.items() if k not in ("env", "hint"))
            self.report(f"{proc.spec.name:<24} ready in {took:5.1f} s  pid {proc.pid:<7} {detail}".rstrip())
        return procs

    def find(self, name: str) -> ManagedProcess | None:
        return next((p for p in self.running if p.spec.name == name), None)

    def kill_and_restart(self, name: str) -> float:
        """SIGKILL one component (its process only: children in their own sessions, such as
        containerd's shims, live on) and start it again in its place, as a service manager with
        Restart=always would; returns the seconds until it is ready again."""
        old = self.find(name)
        if old is None:
            raise KeyError(name)
        with contextlib.suppress(ProcessLookupError):
            os.kill(old.pid, signal.SIGKILL)
        old.proc.wait()
        old._log.close()
        new = ManagedProcess(old.spec, old.log_path)
        self.running[self.running.index(old)] = new  # same place in the stop order
        took = new.wait_ready(new.started + new.spec.ready_timeout)
        self.report(f"{name:<24} killed and ready again in {took:5.1f} s  pid {new.pid}")
        return took

    def stop_one(self, proc: ManagedProcess) -> None:
        self.running.remove(proc)
        self._stop(proc)

    def _stop(self, proc: ManagedProcess) -> None:
        started = time.monotonic()
        code = proc.stop()
        self.report(f"{proc.spec.name:<24} stopped in {time.monotonic() - started:4.1f} s (exit {code})")

    def check(self) -> list[ManagedProcess]:
        """The components that have exited."""
        return [p for p in self.running if not p.alive()]

    def stop_all(self) -> None:
        # newest first, each gone before the next: clients stop before the servers they use
        procs, self.running = list(reversed(self.running)), []
        for p in procs:
            self._stop(p)
        if self._atexit:
            atexit.unregister(self.stop_all)
            self._atexit = False
