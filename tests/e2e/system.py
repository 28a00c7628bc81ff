"""Helpers of the end-to-end tier (fixtures in conftest.py). The tier: the chart installed on
the local cluster's real node with `helm upgrade --install` (as `make dev` does it,
`audio_extract_localcluster.release`), exercised only through its public surfaces: the API on
its NodePort, `kubectl`, webhooks received on this machine, and `helm`."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from audio_extract_localcluster import host, images, release
from audio_extract_localcluster.cluster import REPO, LocalCluster
from audio_extract_localcluster.release import merged
from support.waiting import wait_for


@dataclass
class System:
    """One installed release: `api` (an httpx client with the release's API key), `helm`, `kubectl`."""

    cluster: LocalCluster
    namespace: str
    helm: release.Helm
    keys: release.DevSecrets
    values: dict[str, Any]
    api_url: str
    api: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.api = httpx.Client(base_url=self.api_url, headers={"X-API-Key": self.keys.api_key}, timeout=30)

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> str:
        proc = self.cluster.kubectl("-n", self.namespace, *args, check=False, input=input)
        if check and proc.returncode:
            raise AssertionError(f"kubectl {' '.join(args[:2])} failed: {proc.stderr.strip()[-2000:]}")
        return proc.stdout

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def stored(self, prefix: str = "") -> list[str]:
        """The keys under `prefix` in the release's store: objects under its prefix in the bucket,
        or files on its volume (seen from this machine, as an operator of the store would)."""
        store = self.values["store"]
        if store["type"] == "s3":
            s3 = self.cluster.s3
            assert s3 is not None
            client = s3.client()
            root = store["s3"]["prefix"] + "/"
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=root + prefix)
            return sorted(o["Key"][len(root) :] for page in pages for o in page.get("Contents", []))
        volume = self.cluster.volumes_root / self.namespace / "audio-extract-store"
        return sorted(
            p.relative_to(volume).as_posix()
            for p in volume.rglob("*")
            if p.is_file() and p.relative_to(volume).as_posix().startswith(prefix)
        )

    def upgrade(self, values: dict[str, Any]) -> float:
        self.values = merged(self.values, values)
        return self.helm.install(self.values) + release.wait_serving(self.api_url)

    def follow(self, job_ids: list[str], timeout: float = 180) -> dict[str, dict]:
        """Each job's status once all are terminal."""
        final: dict[str, dict] = {}

        def done() -> bool:
            for job in job_ids:
                if job not in final:
                    reply = self.api.get(f"/v1/status/{job}")
                    assert reply.status_code == 200, reply.text
                    if reply.json()["data"]["status"] in ("completed", "failed", "cancelled"):
                        final[job] = reply.json()["data"]
            return len(final) == len(job_ids)

        wait_for(done, timeout, f"jobs {job_ids} terminal", interval=0.5)
        return final


def project_tag(cluster: LocalCluster, tag: str | None = None) -> str:
    """The project's image (built and loaded by the cluster fixture) tagged `tag` (default: by digest)."""
    archive = images.project_image(cluster.bin_dir, REPO)
    return release.tag_image(cluster.bin_dir, cluster.workdir, archive, tag)


class Receiver:
    """A webhook receiver on the node's address (where pods reach this machine)."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        calls = self.calls

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                calls.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host.HOST_IP, 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://{host.HOST_IP}:{self.httpd.server_address[1]}/hook"

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.calls]

    def wait(self, count: int, timeout: float = 60) -> None:
        wait_for(lambda: len(self.calls) >= count, timeout, f"{count} webhooks")
        time.sleep(0.5)  # a duplicate would come right after


def ffprobe_bytes(data: bytes, path: Path) -> dict[str, Any]:
    path.write_bytes(data)
    argv = ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)
