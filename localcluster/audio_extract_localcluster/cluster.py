"""A real Kubernetes control plane on this machine: etcd, kube-apiserver, kube-controller-manager
and kube-scheduler as local processes, built from source (see `localcluster/build-binaries.sh`).

    with LocalCluster() as cluster:          # ready in a few seconds with cached binaries
        subprocess.run([cluster.bin_dir / "kubectl", "get", "ns"], env=cluster.env)

Ports are chosen free at start, so several clusters can run side by side. The API server serves
TLS on 127.0.0.1 with a generated CA, authorizes with Node and RBAC, runs its default admission
plugins (PodSecurity, ServiceAccount, Priority, ResourceQuota, ...) and signs service-account
tokens. Pods run only where a node agent (`node_agent.py`) is registered.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from . import certs
from .processes import Component, ComponentFailed, Supervisor

BUILD_SCRIPT = Path(__file__).resolve().parent.parent / "build-binaries.sh"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
CONTROLLERS = (
    "job,garbagecollector,ttl-after-finished,namespace,serviceaccount,serviceaccount-token,"
    "nodelifecycle,podgc,deployment,replicaset,root-ca-cert-publisher,persistentvolume-binder-controller,"
    "persistentvolumeclaim-protection-controller,persistentvolume-protection-controller"
)
SERVICE_CIDR = "10.0.0.0/24"
START_ATTEMPTS = 3
SA_ISSUER = "https://kubernetes.default.svc"


def ensure_binaries(report: Callable[[str], None] | None = None) -> Path:
    """The directory holding the control-plane binaries: `KUBEBUILDER_ASSETS`, else the per-version
    cache, building them there first (about 4 minutes) if they are missing. Never skips."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and all((Path(assets) / b).exists() for b in BINARIES):
        return Path(assets)
    if report:
        report(f"locating/building control-plane binaries with {BUILD_SCRIPT.name}")
    # The script is the single source of truth for versions and the cache path; when the binaries
    # are cached it only checks and prints the directory. Its progress goes to our stderr.
    out = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True).stdout
    return Path(out.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:
            return resp.status == 200
    except OSError:
        return False


class LocalCluster:
    """Start/stop a local control plane. Attributes once started: `kubeconfig` (admin, path),
    `server` (https URL), `bin_dir`, `workdir`, `env` (KUBECONFIG and PATH with the binaries)."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        bin_dir: Path | None = None,
        keep: bool = False,
        log_dir: Path | None = None,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="audio-extract-cluster-"))
        self.bin_dir = bin_dir
        self.keep = keep
        self.log_dir = log_dir or self.workdir / "logs"
        self.report = report or (lambda line: None)
        self.supervisor = Supervisor(self.log_dir, self.report)
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.volumes_root = self.workdir / "volumes"  # PVC claim <ns>/<name> -> volumes_root/<ns>/<name>
        self.server = ""
        self.ready_seconds: float | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalCluster:
        self.bin_dir = Path(self.bin_dir or ensure_binaries(self.report))
        started = time.monotonic()
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._write_pki()  # new ports each attempt
                for spec in self._components():
                    self.supervisor.start(spec)
                break
            except ComponentFailed as e:
                # most likely a port taken between choosing it and binding it (clusters start side
                # by side in CI): start again from scratch
                self.supervisor.stop_all()
                shutil.rmtree(self.workdir / "etcd", ignore_errors=True)
                if attempt == START_ATTEMPTS:
                    self.stop()
                    raise
                self.report(f"start attempt {attempt} failed, retrying: {str(e).splitlines()[0]}")
            except BaseException:
                self.stop()
                raise
        self.ready_seconds = time.monotonic() - started
        self.report(f"{'control plane':<24} ready in {self.ready_seconds:5.1f} s  {self.server}")
        return self

    def stop(self) -> None:
        self.supervisor.stop_all()
        if not self.keep:
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
            else:
                shutil.rmtree(self.workdir / "etcd", ignore_errors=True)

    def run(self, spec: Component) -> None:
        """Start one more managed process (node agent, operator, API, ...): it is waited for with
        `spec.ready`, logged to `log_dir/<name>.log` and stopped (before the control plane) by stop()."""
        self.supervisor.start(spec)

    def node_agent(
        self, node_name: str = "local-node", *, slots: int | None = None, volumes_root: Path | None = None
    ) -> Component:
        """The spec of a node agent for this cluster (pass it to run()); ready once its Node is Ready."""
        self.volumes_root = Path(volumes_root or self.workdir / "volumes")
        argv = [
            sys.executable,
            "-m",
            "audio_extract_localcluster.node_agent",
            "--kubeconfig",
            str(self.kubeconfig),
            "--node-name",
            node_name,
            "--volumes-root",
            str(self.volumes_root),
            "--state-dir",
            str(self.workdir / "node" / node_name),
        ]
        if slots:
            argv += ["--slots", str(slots)]
        return Component(
            f"node-agent-{node_name}" if node_name != "local-node" else "node-agent",
            argv,
            env=self.env,
            ready=lambda: self.node_ready(node_name),
            stop_timeout=15,
            extra={"node": node_name, "volumes": self.volumes_root},
        )

    def node_ready(self, name: str) -> bool:
        with urllib.request.urlopen(
            f"{self.server}/api/v1/nodes/{name}", timeout=2, context=self._tls()
        ) as r:
            node = json.load(r)
        conditions = node.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def failed(self) -> list[str]:
        """Names of control-plane processes that have exited since start."""
        return [p.spec.name for p in self.supervisor.check()]

    # -- what clients need ---------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(Path(self.bin_dir) / "kubectl"), *args],
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            check=check,
        )

    def user_kubeconfig(self, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig that authenticates as `user` in `groups` with a client certificate."""
        path = self.pki / f"user-{user.replace(':', '_')}.kubeconfig"
        path.write_text(certs.kubeconfig(self.server, self._ca.cert_pem, self._ca.issue(user, groups), user))
        return path

    def service_account_kubeconfig(self, namespace: str, service_account: str, hours: int = 6) -> Path:
        """A kubeconfig with a real token of the ServiceAccount (the TokenRequest API), so the API
        server authenticates and authorizes its holder exactly as it would a pod of that account."""
        token = self.kubectl(
            "-n", namespace, "create", "token", service_account, f"--duration={hours}h"
        ).stdout.strip()
        user = f"system:serviceaccount:{namespace}:{service_account}"
        path = self.workdir / "identities" / f"{namespace}-{service_account}.kubeconfig"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            certs.kubeconfig(self.server, self._ca.cert_pem, None, user, token=token, namespace=namespace)
        )
        path.chmod(0o600)
        return path

    # -- internals -----------------------------------------------------------------------------

    def _write_pki(self) -> None:
        self.pki = self.workdir / "pki"
        self.pki.mkdir(parents=True, exist_ok=True)
        self._ca = certs.CertificateAuthority()
        self.ca_file = self.pki / "ca.crt"
        self.ca_file.write_bytes(self._ca.cert_pem)
        self.serving = self._ca.issue("kube-apiserver", server_hosts=("127.0.0.1", "localhost")).write(
            self.pki, "apiserver"
        )
        self.sa_pub, self.sa_key = certs.signing_key_pair().write(self.pki, "service-account")
        self.ports = {name: free_port() for name in ("etcd", "etcd-peer", "apiserver")}
        self.server = f"https://127.0.0.1:{self.ports['apiserver']}"
        admin = self._ca.issue("kubernetes-admin", ("system:masters",))
        self.admin_cert, self.admin_key = admin.write(self.pki, "admin")
        self.kubeconfig.write_text(certs.kubeconfig(self.server, self._ca.cert_pem, admin, "admin"))
        for component in ("kube-controller-manager", "kube-scheduler"):
            (self.pki / f"{component}.kubeconfig").write_text(
                certs.kubeconfig(
                    self.server, self._ca.cert_pem, self._ca.issue(f"system:{component}"), component
                )
            )

    def _tls(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.load_cert_chain(self.admin_cert, self.admin_key)
        return ctx

    def _default_sa_exists(self) -> bool:
        # the serviceaccount controller creating `default` proves the controller manager works
        return http_ok(f"{self.server}/api/v1/namespaces/default/serviceaccounts/default", self._tls())

    def _components(self) -> list[Component]:
        b, p, pki = Path(self.bin_dir), self.ports, self.pki
        etcd_url = f"http://127.0.0.1:{p['etcd']}"
        peer_url = f"http://127.0.0.1:{p['etcd-peer']}"
        tls = self._tls()
        return [
            Component(
                "etcd",
                [
                    str(b / "etcd"),
                    "--data-dir",
                    str(self.workdir / "etcd"),
                    "--name",
                    "local",
                    "--listen-client-urls",
                    etcd_url,
                    "--advertise-client-urls",
                    etcd_url,
                    "--listen-peer-urls",
                    peer_url,
                    "--initial-advertise-peer-urls",
                    peer_url,
                    "--initial-cluster",
                    f"local={peer_url}",
                    # a throw-away store: durability is not worth the fsync latency
                    "--unsafe-no-fsync",
                    "--log-level",
                    "warn",
                ],
                ready=lambda: http_ok(f"{etcd_url}/health"),
                extra={"url": etcd_url},
            ),
            Component(
                "kube-apiserver",
                [
                    str(b / "kube-apiserver"),
                    "--etcd-servers",
                    etcd_url,
                    "--bind-address",
                    "127.0.0.1",
                    "--advertise-address",
                    "127.0.0.1",
                    "--secure-port",
                    str(p["apiserver"]),
                    "--cert-dir",
                    str(pki),
                    "--tls-cert-file",
                    str(self.serving[0]),
                    "--tls-private-key-file",
                    str(self.serving[1]),
                    "--client-ca-file",
                    str(self.ca_file),
                    "--service-account-issuer",
                    SA_ISSUER,
                    "--service-account-key-file",
                    str(self.sa_pub),
                    "--service-account-signing-key-file",
                    str(self.sa_key),
                    "--authorization-mode",
                    "Node,RBAC",
                    "--service-cluster-ip-range",
                    SERVICE_CIDR,
                    # privileged pods pass validation so that PodSecurity admission is what refuses them
                    "--allow-privileged=true",
                    "--profiling=false",
                ],
                ready=lambda: http_ok(f"{self.server}/readyz", tls),
                extra={"url": self.server},
            ),
            Component(
                "kube-controller-manager",
                [
                    str(b / "kube-controller-manager"),
                    "--kubeconfig",
                    str(pki / "kube-controller-manager.kubeconfig"),
                    "--leader-elect=false",
                    "--secure-port",
                    "0",
                    "--use-service-account-credentials",
                    "--service-account-private-key-file",
                    str(self.sa_key),
                    "--root-ca-file",
                    str(self.ca_file),
                    "--controllers",
                    CONTROLLERS,
                ],
                ready=self._default_sa_exists,
            ),
            Component(
                "kube-scheduler",
                [
                    str(b / "kube-scheduler"),
                    "--kubeconfig",
                    str(pki / "kube-scheduler.kubeconfig"),
                    "--leader-elect=false",
                    "--secure-port",
                    "0",
                ],
            ),
        ]


def main() -> None:
    """`python -m audio_extract_localcluster.cluster`: start, report the time to ready, stop."""
    with LocalCluster(report=print) as cluster:
        print(cluster.kubectl("get", "--raw", "/version").stdout)
    sys.exit(0)


if __name__ == "__main__":
    main()
