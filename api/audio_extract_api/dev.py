"""``make dev`` extension: the API (uvicorn) against the local cluster, next to the operator
(see ``audio_extract_localcluster.dev``).

- Namespace ``default`` and the store the operator uses (the claim ``audio-extract-store``,
  provisioned as ``<volumes>/default/audio-extract-store``).
- A development API key, generated once into ``.local/api-key`` (its SHA-256 digest, the only
  thing the API reads, into ``.local/api-keys``); ``AUDIO_EXTRACT_API_URL`` and
  ``AUDIO_EXTRACT_API_KEY`` go into ``.local/dev.env``.
- The node's address (``HOST_IP``, where pods reach this machine) and loopback are allowlisted
  for source and webhook URLs, so local media servers and webhook receivers work; the default
  settings refuse them.
- A tiny media server with a generated ``sample.mp4`` on the node's address, so the printed curl
  command works as pasted.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from audio_extract_localcluster.host import HOST_IP
from audio_extract_localcluster.processes import Component

from .auth import digest, generate_key

NAMESPACE = "default"
STORE_CLAIM = "audio-extract-store"
PREFERRED_PORT = 8080


def _port(preferred: int, address: str = "127.0.0.1") -> int:
    for candidate in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind((address, candidate))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port")


def _dev_key(local: Path) -> tuple[str, Path]:
    key_file, keys_file = local / "api-key", local / "api-keys"
    if not key_file.exists():
        key_file.write_text(generate_key() + "\n")
        key_file.chmod(0o600)
    key = key_file.read_text().strip()
    keys_file.write_text(f"dev {digest(key)}\n")
    return key, keys_file


def _sample(media: Path) -> None:
    media.mkdir(parents=True, exist_ok=True)
    if not (media / "sample.mp4").exists():
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                        "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=5",
                        "-f", "lavfi", "-i", "sine=frequency=440:duration=5",
                        "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest",
                        str(media / "sample.mp4")], check=True)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def curl_command(api_url: str, key: str, source_url: str) -> str:
    body = {"jobs": [{"source": {"type": "url", "url": source_url}, "output": {"format": "mp3"}}]}
    return (f"curl -sS -X POST {api_url}/v1/batch -H {shlex.quote('X-API-Key: ' + key)} "
            f"-H 'Content-Type: application/json' -d {shlex.quote(json.dumps(body))}")


def dev_components(cluster: Any, local: Path) -> list[Component]:
    store = Path(cluster.volumes_root) / NAMESPACE / STORE_CLAIM
    store.mkdir(parents=True, exist_ok=True)
    key, keys_file = _dev_key(local)
    media = local / "media"
    _sample(media)
    media_port, api_port = _port(0, HOST_IP), _port(PREFERRED_PORT)
    media_url, api_url = f"http://{HOST_IP}:{media_port}", f"http://127.0.0.1:{api_port}"
    prefix = "AUDIO_EXTRACT_API_"
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefix)}
    env.update({
        f"{prefix}NAMESPACE": NAMESPACE,
        f"{prefix}KUBECONFIG": str(cluster.kubeconfig),
        f"{prefix}API_KEYS_PATH": str(keys_file),
        f"{prefix}STORE_ROOT": str(store),
        f"{prefix}ALLOW_CIDRS": f"127.0.0.0/8,{HOST_IP}/32",
    })
    hint = ("try: " + curl_command(api_url, key, f"{media_url}/sample.mp4")
            + f"\n[dev] then: curl -sS -H 'X-API-Key: {key}' {api_url}/v1/status/<jobId>")
    return [
        Component(
            name="media",
            argv=[sys.executable, "-m", "http.server", str(media_port), "--bind", HOST_IP,
                  "--directory", str(media)],
            ready=lambda: _answers(f"{media_url}/sample.mp4"),
            extra={"url": media_url},
        ),
        Component(
            name="api",
            argv=[sys.executable, "-m", "audio_extract_api", "--host", "127.0.0.1", "--port", str(api_port)],
            env=env,
            ready=lambda: _answers(f"{api_url}/readyz"),
            extra={"url": api_url, "env": {"AUDIO_EXTRACT_API_KEY": key}, "hint": hint},
        ),
    ]
