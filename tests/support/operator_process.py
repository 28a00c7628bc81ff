"""The operator as a killable subprocess for the cluster tests (operator, API and webhook tests)
and the benchmarks.

    op = OperatorProcess(cluster, namespace, admission__max_running=2).start()   # store = the claim's PVC dir
    ...
    op.stop()

``cluster`` is the session's ``LocalCluster`` (``tests/conftest.py``). With ``rbac=True`` the
operator runs as ServiceAccount ``audio-extract-operator`` bound to exactly the Role the chart
renders for it (Kueue mode's too when ``admission__kueue_queue`` is set), authenticated with a
real token of that ServiceAccount (``support.chart.act_as``). Its workers run
the project's image on the node; they reach the operator's progress endpoint and the media server
on the node's address ``HOST_IP``. Settings are keyword arguments named as in
``support.operator_settings`` (``admission__max_running=2``). ``crash_after_send=<marker file>``
runs it through ``support.faults`` instead, which injects a fault into the webhook driver.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from audio_extract_localcluster.host import HOST_IP
from audio_extract_localcluster.images import PROJECT_IMAGE
from audio_extract_localcluster.localnet import free_port
from audio_extract_operator.settings import ENV_PREFIX

from .chart import act_as
from .cluster_objects import DEFAULT_CLAIM, ensure_store_claim
from .operator_settings import environment

TESTS_DIR = Path(__file__).resolve().parents[1]


def grant_operator_rbac(cluster: Any, namespace: str, *, kueue: bool = False) -> Path:
    """The chart's operator ServiceAccount, Role and RoleBinding in ``namespace`` (Kueue mode's Role
    with ``kueue``); returns a kubeconfig with a real token of that ServiceAccount, so the API
    server authorizes the operator exactly as in a pod."""
    values = {"worker": {"kueueQueueName": "any"}} if kueue else None
    return act_as(cluster, namespace, "operator", values=values).kubeconfig


class OperatorProcess:
    """``python -m audio_extract_operator`` watching one namespace, as a killable subprocess."""

    def __init__(
        self,
        cluster: Any,
        namespace: str,
        *,
        rbac: bool = True,
        claim: str = DEFAULT_CLAIM,
        log_dir: Path | None = None,
        crash_after_send: Path | None = None,
        **settings: Any,
    ) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.claim = claim
        self.store_root = ensure_store_claim(cluster, namespace, claim)
        self.log_path = (log_dir or Path(cluster.workdir) / "logs") / f"operator-{namespace}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.port = free_port(HOST_IP)
        self.secret = secrets.token_hex(16)
        kueue = bool(settings.get("admission__kueue_queue"))
        self.kubeconfig = (
            grant_operator_rbac(cluster, namespace, kueue=kueue) if rbac else Path(cluster.kubeconfig)
        )
        values: dict[str, Any] = {
            "namespaces": [namespace],
            "kubeconfig": str(self.kubeconfig),
            "store__claim": claim,
            "store__root": str(self.store_root),
            "worker__image": PROJECT_IMAGE,
            "worker__allow_cidrs": f"{HOST_IP}/32",
            "progress__secret": self.secret,
            "progress__host": HOST_IP,
            "progress__port": self.port,
            "progress__url": f"http://{HOST_IP}:{self.port}/progress",
            "webhook__allow_cidrs": "127.0.0.0/8",
        }
        values.update(settings)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        self.env["KUBECONFIG"] = str(self.kubeconfig)
        self.env.update(environment(values))
        self.argv = [sys.executable, "-m", "audio_extract_operator"]
        if crash_after_send is not None:
            self.argv = [sys.executable, "-m", "support.faults", "crash-after-send", str(crash_after_send)]
            path = [str(TESTS_DIR), *filter(None, [self.env.get("PYTHONPATH")])]
            self.env["PYTHONPATH"] = os.pathsep.join(path)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, wait: bool = True) -> OperatorProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        log.write(f"--- start {self.starts} ---\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self.starts += 1
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://{HOST_IP}:{self.port}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"operator not ready:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as after a node crash or an OOM kill."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def __enter__(self) -> OperatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
