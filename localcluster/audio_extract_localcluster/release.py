"""The chart installed on the local cluster the way a platform team installs it: `helm upgrade
--install` of `charts/audio-extract` with development values, `helm test`, `helm uninstall`.

Development values (`dev_values`): the image built here (`images.PROJECT_IMAGE`, tagged by its
manifest digest so every rebuild is a new tag and a rollout), `pullPolicy: Never` (the node has no
registry to pull from), generated secrets (two API keys of two tenants, `dev` and `other`), the
store on the cluster's default StorageClass, this machine's node address (`host.HOST_IP`) allowed
as a source and webhook target, and the API Service as a NodePort on that address (kube-proxy
serves NodePorts only there), so
`http://<HOST_IP>:<API_NODE_PORT>` reaches the API from this machine and from pods. The store is the
cluster's S3 server (`objectstore`), its key in a Secret the chart names (`store_secret`), a key
prefix per release; or, with `s3=None`, a volume on the cluster's default StorageClass.

`python -m audio_extract_localcluster.release reload` (`make dev-reload`) rebuilds the image and
rolls it out into the cluster `make dev` runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import host, images, localnet, node, objectstore
from .objectstore import S3_PORT, S3Access

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "audio-extract"
RELEASE = "audio-extract"
NAMESPACE = "audio-extract"
API_NODE_PORT = 30080
IMAGE_REPOSITORY = images.PROJECT_IMAGE.rsplit(":", 1)[0]
STORE_SECRET = "audio-extract-store-keys"


OTHER_TENANT = "other"
"""The tenant of the second development key (the first key's tenant is its id, `dev`)."""


@dataclass(frozen=True)
class DevSecrets:
    """Generated once into the local directory, so keys and signatures survive restarts. A secret
    added since a directory was made is generated into it then; the others are kept."""

    api_key: str
    webhook_secret: str
    other_api_key: str
    """A key of another tenant, to try tenant isolation with."""

    @classmethod
    def of(cls, local: Path) -> DevSecrets:
        path = local / "secrets.json"
        known = json.loads(path.read_text()) if path.exists() else {}
        fresh = {
            "api_key": lambda: f"axk_{secrets.token_urlsafe(32)}",
            "webhook_secret": lambda: f"whsec_{base64.b64encode(secrets.token_bytes(32)).decode()}",
            "other_api_key": lambda: f"axk_{secrets.token_urlsafe(32)}",
        }
        if set(fresh) - set(known):
            known = {name: known.get(name) or make() for name, make in fresh.items()}
            local.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.touch(0o600)
            path.chmod(0o600)
            path.write_text(json.dumps(known))
        return cls(**{name: known[name] for name in fresh})

    @property
    def api_key_digest(self) -> str:
        return hashlib.sha256(self.api_key.encode()).hexdigest()

    @property
    def other_api_key_digest(self) -> str:
        return hashlib.sha256(self.other_api_key.encode()).hexdigest()


def api_url(node_port: int = API_NODE_PORT) -> str:
    return f"http://{host.HOST_IP}:{node_port}"


def wait_serving(url: str, timeout: float = 60) -> float:
    """Seconds until the API at `url` (its NodePort) answers /readyz. `helm --wait` ends when the
    API's pods are ready; kube-proxy routes the NodePort to them only once it has seen their
    endpoints, and until then a connection is refused."""
    started = time.monotonic()
    while not localnet.http_ok(f"{url}/readyz"):
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"the API at {url} did not answer /readyz within {timeout:.0f} s")
        time.sleep(0.2)
    return time.monotonic() - started


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, maps merged key by key, as helm layers values files."""
    out = dict(base)
    for key, value in over.items():
        nested = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merged(out[key], value) if nested else value
    return out


def store_values(s3: S3Access | None, prefix: str) -> dict[str, Any]:
    if s3 is None:
        return {"type": "volume", "size": "10Gi"}
    return {
        "type": "s3",
        "s3": {
            "endpoint": s3.endpoint_url,
            "region": s3.region,
            "bucket": s3.bucket,
            "prefix": prefix,
            "addressingStyle": "path",
            "existingSecret": STORE_SECRET,
            "networkPolicyPeers": [{"ipBlock": {"cidr": f"{host.HOST_IP}/32"}}],
            "port": S3_PORT,
        },
    }


def store_secret(s3: S3Access, namespace: str) -> str:
    """The namespace and the Secret with the store's key that `store.s3.existingSecret` names, for
    `kubectl apply` before the chart (helm's --create-namespace would come too late for it)."""
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": STORE_SECRET, "namespace": namespace},
            "stringData": {
                "AWS_ACCESS_KEY_ID": s3.access_key_id,
                "AWS_SECRET_ACCESS_KEY": s3.secret_access_key,
            },
        },
    ]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})


WORKER_CPU_REQUEST = "100m"
DEV_KUEUE_CPU = "400m"  # the dev ClusterQueue's quota: four workers at once, like maxRunning's default


def dev_values(
    tag: str,
    keys: DevSecrets,
    *,
    node_port: int | None = API_NODE_PORT,
    s3: S3Access | None = None,
    store_prefix: str = NAMESPACE,
    kueue_queue: str | None = None,
) -> dict[str, Any]:
    """Values for this machine's one-node cluster (see the module's docstring); `node_port=None`
    lets Kubernetes choose the API's NodePort (several releases at once); `s3`: the cluster's S3
    store, under `store_prefix` (one per release), else a volume; `kueue_queue`: Kueue admits the
    Jobs from this LocalQueue, by the chart's own WorkloadPriorityClasses."""
    service: dict[str, Any] = {"type": "NodePort"} | ({"nodePort": node_port} if node_port else {})
    kueue: dict[str, Any] = {}
    if kueue_queue:
        kueue = {"kueueQueueName": kueue_queue, "kueuePriorityClasses": {"create": True}}
    return {
        "image": {"repository": IMAGE_REPOSITORY, "tag": tag, "pullPolicy": "Never"},
        "secrets": {
            "apiKeys": {
                "dev": keys.api_key_digest,
                "dev-other": f"{keys.other_api_key_digest} tenant={OTHER_TENANT}",
            },
            "webhookSigningSecret": keys.webhook_secret,
        },
        "allowCIDRs": [f"{host.HOST_IP}/32"],
        "logFormat": "text",  # read by people in .local/logs/
        # the API server listens on the node's address
        "networkPolicy": {
            "kubeAPIServer": {"peers": [{"ipBlock": {"cidr": f"{host.HOST_IP}/32"}}], "ports": [6443]}
        },
        "store": store_values(s3, store_prefix),
        "api": {"service": service},
        # Two cores: the chart's defaults (0.5 core requested per extraction) would leave most
        # of maxRunning Pending beside the API and operator; the limits stay as shipped.
        "worker": {
            "resources": {
                "requests": {"cpu": WORKER_CPU_REQUEST, "memory": "128Mi"},
                "limits": {"cpu": "2", "memory": "1Gi"},
            },
            **kueue,
        },
    }


def tag_image(bin_dir: Path, workdir: Path, archive: Path, tag: str | None = None) -> str:
    """Tags the project image loaded in the node as `tag` (default `dev-<digest>`), returns it."""
    name, digest = images.archive_image(archive)
    tag = tag or f"dev-{digest.split(':')[1][:12]}"
    ctr = [str(bin_dir / "ctr"), "-a", str(node.NodePaths.of(workdir).containerd_socket), "-n", "k8s.io"]
    subprocess.run(
        [*ctr, "images", "tag", "--force", name, f"{IMAGE_REPOSITORY}:{tag}"],
        check=True,
        capture_output=True,
        text=True,
    )
    return tag


class Helm:
    """The helm built with the cluster's binaries, with its own empty configuration (no
    repositories or plugins of this machine's user) and the cluster's admin kubeconfig."""

    def __init__(
        self, bin_dir: Path, kubeconfig: Path, namespace: str = NAMESPACE, release: str = RELEASE
    ) -> None:
        self.bin_dir, self.kubeconfig = Path(bin_dir), Path(kubeconfig)
        self.namespace, self.release = namespace, release
        home = Path(tempfile.gettempdir()) / "audio-extract-helm"
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            **{f"HELM_{kind.upper()}_HOME": str(home / kind) for kind in ("cache", "config", "data")},
        }

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.bin_dir / "helm"), *args, "--namespace", self.namespace],
            env=self.env,
            capture_output=True,
            text=True,
        )
        if check and proc.returncode:
            raise RuntimeError(f"helm {args[0]} failed ({proc.returncode}): {proc.stderr.strip()[-3000:]}")
        return proc

    def install(self, values: dict[str, Any], *, timeout: str = "5m") -> float:
        """`helm upgrade --install --wait`; returns the seconds until every Deployment is ready."""
        started = time.monotonic()
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
            os.chmod(file.name, 0o600)  # it holds the webhook signing secret
            yaml.safe_dump(values, file)
            file.flush()
            self(
                "upgrade",
                "--install",
                self.release,
                str(CHART),
                "--create-namespace",
                "--values",
                file.name,
                "--wait",
                "--timeout",
                timeout,
            )
        return time.monotonic() - started

    def test(self, timeout: str = "2m") -> str:
        return self("test", self.release, "--timeout", timeout).stdout

    def uninstall(self, timeout: str = "2m") -> str:
        return self("uninstall", self.release, "--wait", "--timeout", timeout).stdout


def reload(local: Path) -> int:
    """`make dev-reload`: the rebuilt image rolled out into the cluster `make dev` runs."""
    workdir = host.running_cluster()
    if workdir is None:
        print("[reload] no local cluster is running: start it with `make dev`", file=sys.stderr)
        return 1
    from .cluster import ensure_binaries

    started = time.monotonic()
    bin_dir = ensure_binaries()
    archive = images.project_image(bin_dir, REPO, lambda line: print(f"[reload] {line}", flush=True))
    built = time.monotonic()
    images.import_images(bin_dir, node.NodePaths.of(workdir).containerd_socket, [archive])
    tag = tag_image(bin_dir, workdir, archive)
    helm = Helm(bin_dir, workdir / "admin.kubeconfig")
    helm.install(dev_values(tag, DevSecrets.of(local), s3=objectstore.access(local / "objectstore")))
    wait_serving(api_url())
    print(
        f"[reload] {IMAGE_REPOSITORY}:{tag} serving in {time.monotonic() - started:.1f} s "
        f"(image {built - started:.1f} s, load and rollout {time.monotonic() - built:.1f} s)",
        flush=True,
    )
    return 0


def main() -> None:
    if sys.argv[1:] != ["reload"]:
        sys.exit("usage: python -m audio_extract_localcluster.release reload")
    sys.exit(reload(REPO / ".local"))


if __name__ == "__main__":
    main()
