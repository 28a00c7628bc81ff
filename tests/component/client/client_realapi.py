"""The real API (``audio_extract_api.app.create_app``) served by uvicorn on a loopback port inside
the test process, on a volume (a temporary directory) or on the real S3 server (the session
fixture ``s3_server``), for what the client does differently by store: which way an upload's bytes
go. Kubernetes is the API tests' in-memory stand-in (``api_fakekube``), so a batch naming an upload
is accepted or refused by the API's own checks. What reached the store is looked at past the API
(the volume's files, a plain S3 client on the bucket); what reached the API, in its metrics."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
import uvicorn
from botocore.config import Config
from component.api.api_fakekube import FakeKube
from fastapi import FastAPI

from audio_extract_api.app import create_app
from audio_extract_api.settings import Settings
from support.kubeconfigs import UNREACHABLE_KUBECONFIG
from support.s3_server import S3Server

KEY = "axk_client-component-key"
TENANT = "main"


@dataclass
class RealApi:
    url: str
    app: FastAPI
    kube: FakeKube
    root: Path
    s3: S3Server | None = None
    prefix: str = ""

    def metric(self, name: str, **labels: str) -> float:
        """A sample of the API's own metrics (0 when never counted)."""
        registry = self.app.state.services.metrics.registry
        return registry.get_sample_value(name, labels) or 0.0

    def upload_posts(self, status: int) -> float:
        """POST /v1/uploads answered with ``status``."""
        return self.metric(
            "audio_extract_api_requests_total", method="POST", route="/v1/uploads", status=str(status)
        )

    def uploads(self) -> dict[str, bytes]:
        """Every upload in the store, by id."""
        if self.s3 is None:
            folder = self.root / "uploads"
            return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else {}
        client = botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.s3.endpoint_url,
            region_name=self.s3.region,
            aws_access_key_id=self.s3.access_key_id,
            aws_secret_access_key=self.s3.secret_access_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        with contextlib.closing(client):
            listed = client.list_objects_v2(Bucket=self.s3.bucket, Prefix=f"{self.prefix}/uploads/")
            keys = [o["Key"] for o in listed.get("Contents", [])]
            return {
                key.rsplit("/", 1)[1]: client.get_object(Bucket=self.s3.bucket, Key=key)["Body"].read()
                for key in keys
            }


def settings(tmp_path: Path, s3: S3Server | None, prefix: str, **s3_overrides: Any) -> Settings:
    tmp_path.mkdir(parents=True, exist_ok=True)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(UNREACHABLE_KUBECONFIG)
    keys = tmp_path / "api-keys"
    keys.write_text(f"{TENANT} {hashlib.sha256(KEY.encode()).hexdigest()}\n")
    store: dict[str, Any] = (
        {"store_type": "volume", "store_root": tmp_path / "store"}
        if s3 is None
        else {"store_type": "s3", "s3": s3.settings(prefix=prefix, **s3_overrides)}
    )
    return Settings(kubeconfig=kubeconfig, api_keys_path=keys, kube_timeout_seconds=2.0, **store)


@contextlib.contextmanager
def serve(
    tmp_path: Path, s3: S3Server | None = None, prefix: str = "", **s3_overrides: Any
) -> Iterator[RealApi]:
    """The API, its files under ``tmp_path``: on a volume there (``s3`` None) or on ``s3`` under
    ``prefix`` (with ``s3_overrides`` of its settings)."""
    app = create_app(settings(tmp_path, s3, prefix, **s3_overrides))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", ws="none", log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="api", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
            time.sleep(0.02)
        # The services exist once the lifespan has begun; nothing has been asked of them yet.
        kube = FakeKube().install(app)
        host, port = sock.getsockname()
        yield RealApi(f"http://{host}:{port}", app, kube, tmp_path / "store", s3, prefix)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
