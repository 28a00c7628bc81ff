"""Helpers for cluster tests that need a running operator (shared by the operator, API and webhook
tests): the operator as a subprocess, a local media server, generated media, operator RBAC.

    op = OperatorProcess(cluster, namespace, max_running=2).start()   # store = the claim's PVC dir
    media = MediaServer(make_media(tmp_path)).start()                  # http://<HOST_IP>:<port>/...
    ...
    op.stop(); media.stop()

``cluster`` is the session's ``LocalCluster`` (``tests/conftest.py``). With ``rbac=True`` the
operator runs as ServiceAccount ``audio-extract-operator`` bound to exactly ``rbac.RULES``
(authenticated
with a real token of that ServiceAccount). Its workers run the project's image on the node; they
reach the operator's progress endpoint and the media server on the node's address ``HOST_IP``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from audio_extract_localcluster.host import HOST_IP
from audio_extract_localcluster.images import PROJECT_IMAGE

from . import rbac
from .settings import ENV_PREFIX

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = REPO_ROOT / "crds" / "extractionbatches.yaml"
DEFAULT_CLAIM = "audio-extract-store"


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def install_crd(cluster: Any) -> None:
    """Apply the generated CRD (idempotent) and wait until it is served."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/extractionbatches.audioextract.io"
    )


def restricted_pod(
    name: str, command: list[str], image: str = "busybox", user: int | None = 65532, **container: Any
) -> dict[str, Any]:
    """A pod that passes the ``restricted`` Pod Security level and runs ``command`` once: non-root
    (``user``, or the image's own user when None), read-only root, no capabilities, RuntimeDefault
    seccomp, no service-account token."""
    security: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if user is not None:
        security |= {"runAsUser": user, "runAsGroup": user}
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": security,
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": command,
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    **container,
                }
            ],
        },
    }


def apply_objects(cluster: Any, objs: list[Mapping[str, Any]]) -> None:
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([dict(o) for o in objs]))


def grant_operator_rbac(cluster: Any, namespace: str) -> Path:
    """ServiceAccount + Role(rbac.RULES) + RoleBinding; returns a kubeconfig with a real token of that
    ServiceAccount (TokenRequest), so the API server authorizes the operator exactly as in a pod."""
    apply_objects(
        cluster, [rbac.service_account(namespace), rbac.role(namespace), rbac.role_binding(namespace)]
    )
    return cluster.service_account_kubeconfig(namespace, rbac.SERVICE_ACCOUNT)


def ensure_store_claim(cluster: Any, namespace: str, claim: str = DEFAULT_CLAIM) -> Path:
    """The store's PersistentVolumeClaim (default StorageClass: the local provisioner binds it to
    the directory ``volumes_root/<namespace>/<claim>``, which is returned)."""
    local = Path(cluster.volumes_root) / namespace / claim
    local.mkdir(parents=True, exist_ok=True)
    apply_objects(
        cluster,
        [
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim, "namespace": namespace},
                "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
            },
        ],
    )
    return local


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
        self.kubeconfig = grant_operator_rbac(cluster, namespace) if rbac else Path(cluster.kubeconfig)
        values: dict[str, Any] = {
            "namespaces": [namespace],
            "kubeconfig": str(self.kubeconfig),
            "store_claim": claim,
            "store_root": str(self.store_root),
            "worker_image": PROJECT_IMAGE,
            "worker_allow_cidrs": f"{HOST_IP}/32",
            "progress_secret": self.secret,
            "progress_host": HOST_IP,
            "progress_port": self.port,
            "progress_url": f"http://{HOST_IP}:{self.port}/progress",
            "webhook_allow_cidrs": "127.0.0.0/8",
        }
        values.update(settings)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        self.env["KUBECONFIG"] = str(self.kubeconfig)
        for key, value in values.items():
            if value is None:
                continue
            text = json.dumps(value) if isinstance(value, list | dict) else str(value)
            self.env[ENV_PREFIX + key.upper()] = text
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, wait: bool = True) -> OperatorProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        log.write(f"--- start {self.starts} ---\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "audio_extract_operator"],
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


# --- media ---------------------------------------------------------------------------------------


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def make_media(directory: Path) -> Path:
    """Small generated sources: ``av.mp4`` (1 s video + stereo audio), ``tone.wav`` (1 s),
    ``noaudio.mp4`` (video only), ``talk.mp4``/``concert.mkv``/``lecture.mp4``/``interview.mov``
    (the sample manifests' names)."""
    directory.mkdir(parents=True, exist_ok=True)
    video = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1"]
    audio = ["-f", "lavfi", "-i", "sine=frequency=440:duration=1:sample_rate=44100"]
    _ffmpeg(
        *video,
        *audio,
        "-ac",
        "2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        "-shortest",
        str(directory / "av.mp4"),
    )
    _ffmpeg(*audio, str(directory / "tone.wav"))
    _ffmpeg(*video, "-c:v", "libx264", "-preset", "ultrafast", str(directory / "noaudio.mp4"))
    for name in ("talk.mp4", "lecture.mp4"):
        shutil.copy(directory / "av.mp4", directory / name)
    _ffmpeg(
        "-i",
        str(directory / "av.mp4"),
        "-c",
        "copy",
        "-metadata",
        "title=Concert",
        str(directory / "concert.mkv"),
    )
    _ffmpeg(
        "-i",
        str(directory / "av.mp4"),
        "-c",
        "copy",
        "-metadata",
        "title=Interview",
        str(directory / "interview.mov"),
    )
    return directory


class MediaServer:
    """Serves a directory on the node's address (pods reach it); ``/slow/<file>`` waits
    ``slow_seconds`` before answering."""

    def __init__(self, directory: Path, slow_seconds: float = 60.0, address: str = HOST_IP) -> None:
        self.directory = directory
        slow = slow_seconds

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *a: Any, **kw: Any) -> None:
                super().__init__(*a, directory=str(directory), **kw)

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.startswith("/slow/"):
                    time.sleep(slow)
                    self.path = self.path[len("/slow") :]
                super().do_GET()

        self.httpd = ThreadingHTTPServer((address, 0), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> MediaServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
