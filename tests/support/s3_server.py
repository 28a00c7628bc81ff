"""A real S3 server for tests: SeaweedFS (``weed mini``: master, volume server, filer and S3
gateway in one process) on 127.0.0.1, with the bucket ``audio-extract`` and one identity whose
keys every request is signed and checked with.

    with seaweedfs() as s3:   # or the session fixture `s3_server` (tests/component/conftest.py)
        async with S3Store(s3.settings(prefix="t1")) as store: ...
    s3.env                    # AWS_* variables for a child process or any S3 client

    with seaweedfs(tls=ServerTLS(cert, key, ca)) as s3:   # the S3 port serves HTTPS only
        s3.endpoint_url           # https://127.0.0.1:<port>; settings() and env name the CA

The binary is ``$AUDIO_EXTRACT_WEED`` or ``weed`` in the local cluster's binary cache (built there
on first use). Every port, HTTP and gRPC, is chosen here (weed's own gRPC default, port + 10000,
would clash between runs side by side). Ready about 5 s after launch (the first write waits for
the filer to join the master); data and log in a temporary directory removed at exit; telemetry
off: nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audio_extract_common.objectstore import S3Settings
from audio_extract_localcluster import objectstore
from audio_extract_localcluster.cluster import ensure_binaries
from audio_extract_localcluster.localnet import free_ports
from audio_extract_localcluster.processes import Component, ComponentFailed, ManagedProcess

REGION = "us-east-1"
BUCKET = "audio-extract"
READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    region: str
    access_key_id: str
    secret_access_key: str
    bucket: str
    data_dir: Path
    log: Path
    started_in: float  # seconds from launch until the bucket took a write
    ports: dict[str, int] = dataclasses.field(default_factory=dict)
    ca_bundle: Path | None = None  # with TLS: the CA that signed the server's certificate

    def settings(self, **overrides: Any) -> S3Settings:
        """Store settings for this server's bucket (``prefix=...`` keeps tests apart)."""
        values: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "bucket": self.bucket,
            "addressing_style": "path",
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
        }
        if self.ca_bundle is not None:
            values["ca_bundle"] = self.ca_bundle
        return S3Settings(**(values | overrides))

    @property
    def env(self) -> dict[str, str]:
        """What any S3 client (aws CLI, boto3, a child process's credential chain) reads."""
        env = {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AUDIO_EXTRACT_BUCKET": self.bucket,
        }
        if self.ca_bundle is not None:
            env["AWS_CA_BUNDLE"] = str(self.ca_bundle)
        return env


@dataclass(frozen=True)
class ServerTLS:
    """HTTPS on the S3 port (weed's ``-s3.cert.file``/``-s3.key.file``; no plain HTTP then):
    PEM files of the server's certificate and key, and of the CA that signed it."""

    cert: Path
    key: Path
    ca: Path


def weed_binary() -> Path:
    explicit = os.environ.get("AUDIO_EXTRACT_WEED")
    return Path(explicit) if explicit else ensure_binaries() / "weed"


def _ready(server: S3Server) -> bool:
    return objectstore.writable(
        objectstore.S3Access(
            server.endpoint_url, server.region, server.bucket, server.access_key_id, server.secret_access_key
        ),
        verify=str(server.ca_bundle) if server.ca_bundle else None,
    )


class _PortTaken(Exception):
    pass


def _start(weed: Path, tmp: Path, tls: ServerTLS | None) -> tuple[S3Server, ManagedProcess]:
    data = tmp / "data"
    shutil.rmtree(data, ignore_errors=True)  # a previous attempt's
    data.mkdir()
    access_key, secret = "AK" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
    identity = {
        "name": "tests",
        "credentials": [{"accessKey": access_key, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config = tmp / "s3.json"
    config.write_text(json.dumps({"identities": [identity]}))
    ports = free_ports((*objectstore.PORTS, "s3"))
    server = S3Server(
        endpoint_url=f"{'https' if tls else 'http'}://127.0.0.1:{ports['s3']}",
        region=REGION,
        access_key_id=access_key,
        secret_access_key=secret,
        bucket=BUCKET,
        data_dir=data,
        log=tmp / "weed.log",
        started_in=0.0,
        ports=ports,
        ca_bundle=tls.ca if tls else None,
    )
    argv = objectstore.mini_argv(weed, data, config, ports, "127.0.0.1", volume_mb=64)
    if tls:
        argv += [f"-s3.cert.file={tls.cert}", f"-s3.key.file={tls.key}"]
    spec = Component(
        "weed",
        argv,
        ready=lambda: _ready(server),
        ready_timeout=READY_TIMEOUT,
        stop_timeout=5.0,  # TERM takes about 1.5 s
    )
    proc = ManagedProcess(spec, server.log)
    try:
        took = proc.wait_ready(proc.started + READY_TIMEOUT)
    except BaseException as e:
        _stop(proc, server)
        if isinstance(e, ComponentFailed) and "address already in use" in proc.log_tail(100):
            raise _PortTaken from e  # taken between the choice and the bind
        raise
    return dataclasses.replace(server, started_in=took), proc


def _stop(proc: ManagedProcess, server: S3Server) -> None:
    proc.stop()
    objectstore.remove_sockets(server.ports)


@contextlib.contextmanager
def seaweedfs(weed: Path | None = None, *, tls: ServerTLS | None = None) -> Iterator[S3Server]:
    """A running S3 server with the bucket ``audio-extract``, stopped and removed at exit; with
    ``tls`` its S3 port serves HTTPS with that certificate."""
    weed = weed or weed_binary()
    tmp = Path(tempfile.mkdtemp(prefix="s3-server-"))
    try:
        for attempt in range(3):
            try:
                server, proc = _start(weed, tmp, tls)
                break
            except _PortTaken:
                if attempt == 2:
                    raise
        try:
            yield server
        finally:
            _stop(proc, server)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure() -> None:  # pragma: no cover - `python -m support.s3_server` prints the start-up time
    started = time.monotonic()
    with seaweedfs() as s3:
        print(f"{s3.endpoint_url} bucket {s3.bucket}: ready in {s3.started_in:.2f} s")
    print(f"up and down in {time.monotonic() - started:.2f} s")


if __name__ == "__main__":
    measure()
