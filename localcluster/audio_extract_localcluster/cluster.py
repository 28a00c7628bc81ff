"""A real single-node Kubernetes on this machine: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler, and a node of containerd, runc, the CNI bridge, kubelet, kube-proxy, kube-router's
NetworkPolicy firewall and CoreDNS, all built from source (`localcluster/build-binaries.sh`) and
run as local processes; the images the node runs are built here too (`images.py`).

    with LocalCluster() as cluster:          # ready in seconds with cached binaries and images
        subprocess.run([cluster.bin_dir / "kubectl", "get", "nodes"], env=cluster.env)

One local cluster runs on a machine at a time (a second start raises `host.ClusterRunning`), and
it needs root, as kind's nodes and k3s do. The API server serves TLS on the node's address
`host.HOST_IP` (on `lo`; pods reach it) with a generated CA, authorizes with Node and RBAC, runs
its default admission plugins (PodSecurity, ServiceAccount, Priority, ResourceQuota, ...) and signs
service-account tokens. A stop removes every pod and puts the host back (`host.py`).
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from . import addons, certs, host, images, kueue, kwok, node, objectstore, registry
from .localnet import free_port, http_ok
from .processes import Component, ComponentFailed, Supervisor

BUILD_SCRIPT = Path(__file__).resolve().parent.parent / "build-binaries.sh"
REPO = Path(__file__).resolve().parents[2]
CONTROLLERS = (
    "job,garbagecollector,ttl-after-finished,namespace,serviceaccount,serviceaccount-token,"
    "nodelifecycle,podgc,deployment,replicaset,endpoint,endpointslice,clusterrole-aggregation,"
    "root-ca-cert-publisher,persistentvolume-binder-controller,"
    "persistentvolumeclaim-protection-controller,persistentvolume-protection-controller,disruption"
)
SERVICE_CIDR = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = "10.0.0.1"
APISERVER_PORT = 6443
START_ATTEMPTS = 3
SA_ISSUER = "https://kubernetes.default.svc"


def ensure_binaries(report: Callable[[str], None] | None = None, optional: Sequence[str] = ()) -> Path:
    """The directory holding the cluster's binaries, building them there first (about 15 minutes
    the first time) if they are missing, with the `optional` ones named (e.g. "kwok"). Never skips."""
    if report:
        report(f"locating/building binaries with {BUILD_SCRIPT.name}")
    # The script is the single source of truth for versions and the cache path; when the binaries
    # are cached it only checks and prints the directory. Its progress goes to our stderr.
    argv = ["bash", str(BUILD_SCRIPT), *optional]
    out = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True).stdout
    return Path(out.strip().splitlines()[-1])


def _write_private(path: Path, text: str) -> None:
    """Writes a file only its owner can read, whatever the umask, before the secret is in it."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


class LocalCluster:
    """Start/stop the local cluster. Attributes once started: `kubeconfig` (admin, path), `server`
    (https URL), `bin_dir`, `workdir`, `volumes_root` (a claim C in namespace N is the directory
    `volumes_root/N/C`), `env` (KUBECONFIG and PATH with the binaries), `node_paths`, `s3` (the
    S3 store's endpoint, bucket and key: `objectstore.S3Access`).

    `project_image`: build the project's image (`images.project_image`, cached) and load it into
    the node; `images`: further OCI archives to load besides the pause, busybox and CoreDNS ones;
    `kueue`: start Kueue too (`start_kueue`), with its CRDs and no queue; `throttle_controllers`:
    False lifts the client rate limits of the controller manager and the scheduler (20 and 50
    requests per second by default) and lets the Job controller sync 50 Jobs at once (5), as a
    large cluster's control plane is tuned, so that simulated nodes (`start_kwok`) are not held
    back by them."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        bin_dir: Path | None = None,
        keep: bool = False,
        log_dir: Path | None = None,
        report: Callable[[str], None] | None = None,
        project_image: bool = False,
        images: Sequence[Path] = (),
        volumes_root: Path | None = None,
        objectstore_root: Path | None = None,
        kueue: bool = False,
        throttle_controllers: bool = True,
    ) -> None:
        self._own_workdir = workdir is None
        # short and absolute: containerd's socket path must fit in a unix socket address
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="aex-cluster-")).resolve()
        self.bin_dir = bin_dir
        self.keep = keep
        self.log_dir = log_dir or self.workdir / "logs"
        self.report = report or (lambda line: None)
        self.supervisor = Supervisor(self.log_dir, self.report)
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.volumes_root = Path(volumes_root or self.workdir / "volumes")
        self.objectstore_root = Path(objectstore_root or self.workdir / "objectstore")
        self.s3: objectstore.S3Access | None = None
        self.node_paths = node.NodePaths.of(self.workdir)
        self.extra_images = list(images)
        self.project_image = project_image
        self.server = f"https://{host.HOST_IP}:{APISERVER_PORT}"
        self.ready_seconds: float | None = None
        self.kueue = kueue
        self.throttle_controllers = throttle_controllers
        self._claim: host.HostClaim | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalCluster:
        host.require_root()
        self.bin_dir = Path(self.bin_dir or ensure_binaries(self.report))
        node_images = images.node_images(self.bin_dir, self.report)
        if self.project_image:
            node_images.append(images.project_image(self.bin_dir, REPO, self.report))
        started = time.monotonic()
        self._claim = host.claim(self.workdir)
        try:
            self._write_pki()
            self._write_node_config()
            self.supervisor.start(self._containerd())
            # the images unpack while the control plane starts
            loading = ThreadPoolExecutor(1).submit(
                _timed,
                images.import_images,
                self.bin_dir,
                self.node_paths.containerd_socket,
                [*node_images, *self.extra_images],
            )
            self._start_control_plane()
            self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(addons.access()))
            # none of these waits for another: start them together
            self.supervisor.start_together(
                [
                    *self._controllers(),
                    self._registry([*node_images, *self.extra_images]),
                    objectstore.component(Path(self.bin_dir), self.objectstore_root),
                    *self._node_components(),
                ]
            )
            self.s3 = objectstore.access(self.objectstore_root)  # its bucket: made by its ready check
            self.supervisor.start(self._kube_router())  # it reads its Node at start
            took = loading.result()
            self.report(f"{'images':<24} imported in {took:5.1f} s")
            self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(addons.coredns(images.COREDNS_IMAGE)))
            self._wait_dns()
            if self.kueue:
                self.start_kueue()
        except BaseException:
            self.stop()
            raise
        self.ready_seconds = time.monotonic() - started
        self.report(f"{'cluster':<24} ready in {self.ready_seconds:5.1f} s  {self.server}")
        return self

    def stop(self) -> None:
        """Remove every pod, stop every process and put the host back as it was."""
        kubelet = self.supervisor.find("kubelet")
        if kubelet is not None:
            self.supervisor.stop_one(kubelet)  # or it would start the pods again
        if self.supervisor.find("containerd") is not None:
            self.crictl("rmp", "--all", "--force", check=False)
        store = self.supervisor.find("objectstore")
        self.supervisor.stop_all()
        if store is not None:  # a killed weed leaves a unix socket per gRPC port in /tmp
            objectstore.remove_sockets(store.spec.extra["ports"])
        if self._claim is not None:
            self._claim.release()
            self._claim = None
        if not self.keep:
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
            else:
                shutil.rmtree(self.workdir / "etcd", ignore_errors=True)
                shutil.rmtree(self.workdir / "node", ignore_errors=True)

    def start_kueue(self) -> None:
        """Start Kueue (idempotent): its CRDs (established), its RBAC and its controller, ready."""
        if self.supervisor.find("kueue") is not None:
            return
        started = time.monotonic()
        b = Path(self.bin_dir)
        self.kubectl("apply", "--server-side", "-f", "-", input=kueue.crds(b))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", *kueue.crd_names(b))
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(kueue.rbac(b)))
        work = self.workdir / "kueue"
        work.mkdir(mode=0o700, exist_ok=True)
        serving = self._ca.issue("kueue", server_hosts=("127.0.0.1",))
        kueue.METRICS_CERT_DIR.mkdir(parents=True, exist_ok=True)
        serving.write(kueue.METRICS_CERT_DIR, "tls")
        serving.write(work, "tls")  # the webhook server's, unused: no webhook is registered
        kubeconfig = work / "kueue.kubeconfig"
        _write_private(
            kubeconfig, certs.kubeconfig(self.server, self._ca.cert_pem, self._ca.issue(kueue.USER), "kueue")
        )
        health, webhook = free_port(), free_port()
        config = work / "config.yaml"
        config.write_text(yaml.safe_dump(kueue.config(health, webhook, work)))
        self.supervisor.start(kueue.component(b, config, kubeconfig, health))
        self.report(f"{'kueue':<24} ready in {time.monotonic() - started:5.1f} s")

    def start_kwok(self, stages: Sequence[dict[str, Any]]) -> None:
        """Start KWOK (idempotent), building it first if needed: it plays its module's node and pod
        start/delete stages and `stages` (e.g. `kwok.job_pod_done`) on the nodes `kwok.nodes` makes."""
        if self.supervisor.find("kwok") is not None:
            return
        started = time.monotonic()
        b = Path(self.bin_dir)
        if not (b / "kwok").exists():
            ensure_binaries(self.report, optional=("kwok",))
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(kwok.rbac(b)))
        work = self.workdir / "kwok"
        work.mkdir(mode=0o700, exist_ok=True)
        kubeconfig = work / "kwok.kubeconfig"
        _write_private(
            kubeconfig, certs.kubeconfig(self.server, self._ca.cert_pem, self._ca.issue(kwok.USER), "kwok")
        )
        port = free_port()
        config = work / "config.yaml"
        config.write_text(yaml.safe_dump_all([kwok.config(port), *kwok.module_stages(b), *stages]))
        self.supervisor.start(kwok.component(b, config, kubeconfig, port))
        self.report(f"{'kwok':<24} ready in {time.monotonic() - started:5.1f} s")

    def run(self, spec: Component) -> None:
        """Start one more managed process (the operator, the API, ...): it is waited for with
        `spec.ready`, logged to `log_dir/<name>.log` and stopped (before the node) by stop()."""
        self.supervisor.start(spec)

    def crash_runtime(self) -> float:
        """The node's container runtime dies (SIGKILL) and its service manager starts it again;
        running containers live on under their shims. Seconds until it answers again."""
        return self.supervisor.kill_and_restart("containerd")

    def node_ready(self, name: str = node.NODE_NAME) -> bool:
        with urllib.request.urlopen(
            f"{self.server}/api/v1/nodes/{name}", timeout=2, context=self._tls()
        ) as r:
            found = json.load(r)
        conditions = found.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def failed(self) -> list[str]:
        """Names of the cluster's processes that have exited since start."""
        return [p.spec.name for p in self.supervisor.check()]

    def import_images(self, tars: Sequence[Path]) -> None:
        """Load more images into the node (e.g. a rebuilt project image)."""
        images.import_images(Path(self.bin_dir), self.node_paths.containerd_socket, list(tars))

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

    def crictl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """crictl against the node's containerd (inspect containers as the runtime runs them)."""
        return subprocess.run(
            [
                str(Path(self.bin_dir) / "crictl"),
                "--runtime-endpoint",
                f"unix://{self.node_paths.containerd_socket}",
                "--timeout",
                "30s",
                *args,
            ],
            capture_output=True,
            text=True,
            check=check,
        )

    def user_kubeconfig(self, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig that authenticates as `user` in `groups` with a client certificate."""
        path = self.pki / f"user-{user.replace(':', '_')}.kubeconfig"
        identity = self._ca.issue(user, groups)
        _write_private(path, certs.kubeconfig(self.server, self._ca.cert_pem, identity, user))
        return path

    def service_account_kubeconfig(self, namespace: str, service_account: str, hours: int = 6) -> Path:
        """A kubeconfig with a real token of the ServiceAccount (the TokenRequest API), so the API
        server authenticates and authorizes its holder exactly as it would a pod of that account."""
        token = self.kubectl(
            "-n", namespace, "create", "token", service_account, f"--duration={hours}h"
        ).stdout.strip()
        user = f"system:serviceaccount:{namespace}:{service_account}"
        path = self.workdir / "identities" / f"{namespace}-{service_account}.kubeconfig"
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        ca = self._ca.cert_pem
        _write_private(path, certs.kubeconfig(self.server, ca, None, user, token=token, namespace=namespace))
        return path

    # -- internals -----------------------------------------------------------------------------

    def _write_pki(self) -> None:
        # keys, the admin kubeconfig (system:masters) and etcd's data: for root's eyes only
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o700)
        self.pki = self.workdir / "pki"
        self.pki.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._ca = certs.CertificateAuthority()
        self.ca_file = self.pki / "ca.crt"
        self.ca_file.write_bytes(self._ca.cert_pem)
        names = ("kubernetes", "kubernetes.default", "kubernetes.default.svc")
        self.serving = self._ca.issue(
            "kube-apiserver",
            server_hosts=(
                host.HOST_IP,
                KUBERNETES_SERVICE_IP,
                "127.0.0.1",
                "localhost",
                *names,
                f"kubernetes.default.svc.{node.CLUSTER_DOMAIN}",
            ),
        ).write(self.pki, "apiserver")
        self.kubelet_client = self._ca.issue(addons.APISERVER_KUBELET_USER).write(
            self.pki, "apiserver-kubelet"
        )
        self.kubelet_serving = self._ca.issue(
            node.NODE_NAME, server_hosts=(host.HOST_IP, node.NODE_NAME)
        ).write(self.pki, "kubelet-serving")
        self.sa_pub, self.sa_key = certs.signing_key_pair().write(self.pki, "service-account")
        self.ports = {name: free_port() for name in ("etcd", "etcd-peer")}
        # etcd speaks TLS with client certificates only, as in a real control plane
        etcd = self._ca.issue("etcd", server_hosts=("127.0.0.1",), peer=True)
        self.etcd_serving = etcd.write(self.pki, "etcd")
        etcd_client = self._ca.issue("kube-apiserver-etcd-client")
        self.etcd_client = etcd_client.write(self.pki, "apiserver-etcd-client")
        admin = self._ca.issue("kubernetes-admin", ("system:masters",))
        self.admin_cert, self.admin_key = admin.write(self.pki, "admin")
        _write_private(self.kubeconfig, certs.kubeconfig(self.server, self._ca.cert_pem, admin, "admin"))
        identities = {
            "kube-controller-manager": ("system:kube-controller-manager", ()),
            "kube-scheduler": ("system:kube-scheduler", ()),
            "kubelet": (f"system:node:{node.NODE_NAME}", ("system:nodes",)),
            "kube-proxy": ("system:kube-proxy", ()),
            "kube-router": (addons.KUBE_ROUTER_USER, ()),
        }
        for component, (user, groups) in identities.items():
            _write_private(
                self.pki / f"{component}.kubeconfig",
                certs.kubeconfig(self.server, self._ca.cert_pem, self._ca.issue(user, groups), component),
            )

    def _write_node_config(self) -> None:
        node.write_configs(
            self.node_paths,
            Path(self.bin_dir),
            images.PAUSE_IMAGE,
            self.ca_file,
            self.kubelet_serving,
            addons.DNS_IP,
        )
        self.registry_port = free_port()
        hosts = self.node_paths.root / "containerd" / "certs.d" / "_default" / "hosts.toml"
        hosts.parent.mkdir(parents=True, exist_ok=True)
        hosts.write_text(registry.hosts_toml(self.registry_port))

    def _registry(self, archives: list[Path]) -> Component:
        port = self.registry_port
        return Component(
            "registry",
            [
                sys.executable,
                "-m",
                "audio_extract_localcluster.registry",
                "--port",
                str(port),
                *map(str, archives),
            ],
            ready=lambda: http_ok(f"http://127.0.0.1:{port}/v2/"),
            extra={"url": f"http://127.0.0.1:{port}"},
        )

    def _tls(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.load_cert_chain(self.admin_cert, self.admin_key)
        return ctx

    def _default_sa_exists(self) -> bool:
        # the serviceaccount controller creating `default` proves the controller manager works
        return http_ok(f"{self.server}/api/v1/namespaces/default/serviceaccounts/default", self._tls())

    def _start_control_plane(self) -> None:
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                for spec in self._control_plane():
                    self.supervisor.start(spec)
                return
            except ComponentFailed as e:
                # most likely etcd's port taken between choosing it and binding it: start again
                for name in ("kube-apiserver", "etcd"):
                    found = self.supervisor.find(name)
                    if found is not None:
                        self.supervisor.stop_one(found)
                shutil.rmtree(self.workdir / "etcd", ignore_errors=True)
                if attempt == START_ATTEMPTS:
                    raise
                self.report(f"start attempt {attempt} failed, retrying: {str(e).splitlines()[0]}")
                self.ports = {name: free_port() for name in ("etcd", "etcd-peer")}

    def _containerd(self) -> Component:
        sock = self.node_paths.containerd_socket
        return Component(
            "containerd",
            node.containerd_argv(self.node_paths, Path(self.bin_dir)),
            # the runc shim is found on PATH
            env={**os.environ, "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
            ready=lambda: sock.exists() and self.crictl("version", check=False).returncode == 0,
            stop_timeout=10,
        )

    def _node_components(self) -> list[Component]:
        b, pki = Path(self.bin_dir), self.pki
        return [
            Component(
                "kubelet",
                node.kubelet_argv(self.node_paths, b, pki / "kubelet.kubeconfig"),
                ready=self.node_ready,
                stop_timeout=10,
                extra={"node": node.NODE_NAME},
            ),
            Component(
                "kube-proxy",
                node.kube_proxy_argv(b, pki / "kube-proxy.kubeconfig"),
                ready=lambda: http_ok(f"http://{node.KUBE_PROXY_HEALTH}/healthz"),
            ),
            Component(
                "provisioner",
                [
                    sys.executable,
                    "-m",
                    "audio_extract_localcluster.provisioner",
                    "--kubeconfig",
                    str(self.kubeconfig),
                    "--volumes-root",
                    str(self.volumes_root),
                ],
                ready=lambda: http_ok(
                    f"{self.server}/apis/storage.k8s.io/v1/storageclasses/local", self._tls()
                ),
            ),
        ]

    def _kube_router(self) -> Component:
        return Component(
            "kube-router",
            node.kube_router_argv(Path(self.bin_dir), self.pki / "kube-router.kubeconfig", SERVICE_CIDR),
            ready=_kube_router_ready,
        )

    def _wait_dns(self, timeout: float = 60) -> None:
        started = time.monotonic()
        self.kubectl(
            "-n", "kube-system", "rollout", "status", "deployment/coredns", f"--timeout={int(timeout)}s"
        )
        self.report(f"{'coredns':<24} ready in {time.monotonic() - started:5.1f} s  {addons.DNS_IP}")

    def _control_plane(self) -> list[Component]:
        b, p, pki = Path(self.bin_dir), self.ports, self.pki
        etcd_url = f"https://127.0.0.1:{p['etcd']}"
        peer_url = f"https://127.0.0.1:{p['etcd-peer']}"
        tls = self._tls()
        etcd_tls = ssl.create_default_context(cafile=str(self.ca_file))
        etcd_tls.load_cert_chain(*self.etcd_client)
        etcd_cert, etcd_key = map(str, self.etcd_serving)
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
                    "--cert-file",
                    etcd_cert,
                    "--key-file",
                    etcd_key,
                    "--client-cert-auth",
                    "--trusted-ca-file",
                    str(self.ca_file),
                    "--peer-cert-file",
                    etcd_cert,
                    "--peer-key-file",
                    etcd_key,
                    "--peer-client-cert-auth",
                    "--peer-trusted-ca-file",
                    str(self.ca_file),
                    # a throw-away store: durability is not worth the fsync latency
                    "--unsafe-no-fsync",
                    "--log-level",
                    "warn",
                ],
                ready=lambda: http_ok(f"{etcd_url}/health", etcd_tls),
                extra={"url": etcd_url},
            ),
            Component(
                "kube-apiserver",
                [
                    str(b / "kube-apiserver"),
                    "--etcd-servers",
                    etcd_url,
                    "--etcd-cafile",
                    str(self.ca_file),
                    "--etcd-certfile",
                    str(self.etcd_client[0]),
                    "--etcd-keyfile",
                    str(self.etcd_client[1]),
                    # the node's address, which pods reach (127.0.0.1 in a pod is the pod)
                    "--bind-address",
                    host.HOST_IP,
                    "--advertise-address",
                    host.HOST_IP,
                    "--secure-port",
                    str(APISERVER_PORT),
                    "--cert-dir",
                    str(pki),
                    "--tls-cert-file",
                    str(self.serving[0]),
                    "--tls-private-key-file",
                    str(self.serving[1]),
                    "--client-ca-file",
                    str(self.ca_file),
                    "--kubelet-client-certificate",
                    str(self.kubelet_client[0]),
                    "--kubelet-client-key",
                    str(self.kubelet_client[1]),
                    # never resolve the node's name through the machine's resolver
                    "--kubelet-preferred-address-types",
                    "InternalIP",
                    "--service-account-issuer",
                    SA_ISSUER,
                    "--service-account-key-file",
                    str(self.sa_pub),
                    "--service-account-signing-key-file",
                    str(self.sa_key),
                    "--authorization-mode",
                    "Node,RBAC",
                    "--enable-admission-plugins",
                    "NodeRestriction",
                    "--service-cluster-ip-range",
                    SERVICE_CIDR,
                    # privileged pods pass validation so that PodSecurity admission is what refuses them
                    "--allow-privileged=true",
                    "--profiling=false",
                ],
                ready=lambda: http_ok(f"{self.server}/readyz", tls),
                extra={"url": self.server},
            ),
        ]

    def _controllers(self) -> list[Component]:
        b, pki = Path(self.bin_dir), self.pki
        unthrottled = [] if self.throttle_controllers else ["--kube-api-qps=5000", "--kube-api-burst=10000"]
        # The Job controller syncs 5 Jobs at a time by default: with thousands of Jobs and a busy
        # API server, making their pods and counting their ends waits on those 5.
        job_syncs = [] if self.throttle_controllers else ["--concurrent-job-syncs=50"]
        return [
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
                    *unthrottled,
                    *job_syncs,
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
                    *unthrottled,
                ],
            ),
        ]


def _kube_router_ready() -> bool:
    # its firewall chains exist once it has synced the policies
    return subprocess.run(["iptables", "-S", "KUBE-ROUTER-FORWARD"], capture_output=True).returncode == 0


def _timed(func: Callable[..., object], *args: object) -> float:
    """Seconds ``func(*args)`` took."""
    started = time.monotonic()
    func(*args)
    return time.monotonic() - started


def main() -> None:
    """`python -m audio_extract_localcluster.cluster`: start, report the time to ready, stop."""
    with LocalCluster(report=print) as cluster:
        print(cluster.kubectl("get", "nodes", "-o", "wide").stdout)
    sys.exit(0)


if __name__ == "__main__":
    main()
