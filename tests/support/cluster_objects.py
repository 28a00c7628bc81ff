"""Objects the cluster tests put into the local cluster: the generated CRD, a restricted pod, the
store's claim.

``cluster`` is the session's ``LocalCluster`` (``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = REPO_ROOT / "crds" / "extractionbatches.yaml"
DEFAULT_CLAIM = "audio-extract-store"


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
