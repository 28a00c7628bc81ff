"""``make dev`` extension: run the operator against the local cluster (see
``audio_extract_localcluster.dev``). Namespace ``default``, store claim ``audio-extract-store``
(provisioned as ``.local/volumes/default/audio-extract-store``, which is also the operator's store
root); workers run the project's image on the node and post progress to the operator on the
node's address; sources on that address and webhooks on loopback or that address are allowed.
Secrets are generated once into ``.local/operator.env`` so tokens baked into Jobs survive restarts
of ``make dev``.
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
import urllib.request
from pathlib import Path
from typing import Any

from audio_extract_localcluster.host import HOST_IP
from audio_extract_localcluster.images import PROJECT_IMAGE
from audio_extract_localcluster.processes import Component

from .settings import ENV_PREFIX
from .testing import ensure_store_claim, free_port, install_crd

NAMESPACE = "default"


def _secrets(local: Path) -> dict[str, str]:
    path = local / "operator.env"
    if not path.exists():
        path.write_text(
            f"{ENV_PREFIX}PROGRESS_SECRET={secrets.token_hex(32)}\n"
            f"{ENV_PREFIX}WEBHOOK_SECRET=whsec_{base64.b64encode(secrets.token_bytes(32)).decode()}\n"
        )
        path.chmod(0o600)
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def dev_components(cluster: Any, local: Path) -> list[Component]:
    install_crd(cluster)
    store = ensure_store_claim(cluster, NAMESPACE)
    port = free_port(HOST_IP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(_secrets(local))
    env.update(
        {
            "KUBECONFIG": str(cluster.kubeconfig),
            f"{ENV_PREFIX}NAMESPACES": f'["{NAMESPACE}"]',
            f"{ENV_PREFIX}STORE_ROOT": str(store),
            f"{ENV_PREFIX}WORKER_IMAGE": PROJECT_IMAGE,
            f"{ENV_PREFIX}WORKER_ALLOW_CIDRS": f"{HOST_IP}/32",
            f"{ENV_PREFIX}WEBHOOK_ALLOW_CIDRS": f"127.0.0.0/8,{HOST_IP}/32",
            f"{ENV_PREFIX}PROGRESS_HOST": HOST_IP,
            f"{ENV_PREFIX}PROGRESS_PORT": str(port),
            f"{ENV_PREFIX}PROGRESS_URL": f"http://{HOST_IP}:{port}/progress",
        }
    )
    health = f"http://{HOST_IP}:{port}/healthz"
    return [
        Component(
            name="operator",
            argv=[sys.executable, "-m", "audio_extract_operator"],
            env=env,
            ready=lambda: _healthy(health),
            extra={"namespace": NAMESPACE, "store": str(store),
                   # in .local/dev.env, so a receiver can verify signatures (docs/webhooks.md)
                   "env": {"AUDIO_EXTRACT_WEBHOOK_SECRET": env[f"{ENV_PREFIX}WEBHOOK_SECRET"]}},
        )
    ]
