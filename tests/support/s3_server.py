"""A real S3 server for tests: SeaweedFS (``weed mini``: master, volume server, filer and S3
gateway in one process) on 127.0.0.1, with the bucket ``audio-extract`` and one identity whose
keys every request is signed and checked with.

    with seaweedfs() as s3:   # or the session fixture `s3_server` (tests/component/conftest.py)
        async with S3Store(s3.settings(prefix="t1")) as store: ...
    s3.env                    # AWS_* variables for a child process or any S3 client

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
import random
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from audio_extract_common.objectstore import S3Settings
from audio_extract_localcluster.cluster import ensure_binaries
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
    grpc_ports: tuple[int, ...] = ()

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
        return S3Settings(**(values | overrides))

    @property
    def env(self) -> dict[str, str]:
        """What any S3 client (aws CLI, boto3, a child process's credential chain) reads."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AUDIO_EXTRACT_BUCKET": self.bucket,
        }


def weed_binary() -> Path:
    explicit = os.environ.get("AUDIO_EXTRACT_WEED")
    return Path(explicit) if explicit else ensure_binaries() / "weed"


PORTS = (
    "master",
    "master_grpc",
    "volume",
    "volume_grpc",
    "filer",
    "filer_grpc",
    "s3",
    "s3_grpc",
    "admin_grpc",
)


def _free_ports(count: int) -> list[int]:
    """Ports free now, below Linux's ephemeral range (32768+), where an outgoing connection could
    take one between this choice and weed's bind (weed itself warns about that)."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(10000, 32768)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in ports:
            ports.append(port)
    return ports


def _argv(weed: Path, data: Path, config: Path, p: dict[str, int]) -> list[str]:
    # `weed mini`: master, volume server, filer and S3 gateway in one process, tuned for small
    # setups (a single master elects itself at once: ready seconds sooner than `weed server`)
    return [
        str(weed),
        "-logtostderr",
        "mini",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data}",
        f"-master.port={p['master']}",
        f"-master.port.grpc={p['master_grpc']}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",  # small volume files in a test's temp dir
        f"-volume.port={p['volume']}",
        f"-volume.port.grpc={p['volume_grpc']}",
        f"-filer.port={p['filer']}",
        f"-filer.port.grpc={p['filer_grpc']}",
        f"-filer.localSocket={data / 'filer.sock'}",
        f"-s3.port={p['s3']}",
        f"-s3.port.grpc={p['s3_grpc']}",
        f"-s3.localSocket={data / 's3.sock'}",
        f"-s3.config={config}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        f"-admin.port.grpc={p['admin_grpc']}",  # bound even without the UI
        "-admin.port.legacy=0",
    ]


def _ready(server: S3Server) -> bool:
    """The bucket exists and takes a write: the first write waits for the filer to join the
    master (a few seconds after the S3 port answers), better here than in a test's timing."""
    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name=server.region,
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.secret_access_key,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=20),
    )
    try:
        with contextlib.suppress(ClientError):  # BucketAlreadyOwnedByYou, after a timed-out try
            client.create_bucket(Bucket=server.bucket)
        client.put_object(Bucket=server.bucket, Key=".ready", Body=b"")
        client.delete_object(Bucket=server.bucket, Key=".ready")
        return True
    except (BotoCoreError, ClientError):  # not listening yet, or not writable yet
        return False
    finally:
        client.close()


class _PortTaken(Exception):
    pass


def _start(weed: Path, tmp: Path) -> tuple[S3Server, ManagedProcess]:
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
    ports = dict(zip(PORTS, _free_ports(len(PORTS)), strict=True))
    server = S3Server(
        endpoint_url=f"http://127.0.0.1:{ports['s3']}",
        region=REGION,
        access_key_id=access_key,
        secret_access_key=secret,
        bucket=BUCKET,
        data_dir=data,
        log=tmp / "weed.log",
        started_in=0.0,
        grpc_ports=tuple(ports[name] for name in PORTS if name.endswith("grpc")),
    )
    spec = Component(
        "weed",
        _argv(weed, data, config, ports),
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
    # weed puts a Unix socket per gRPC port in /tmp, named by the port; a killed weed leaves them
    for port in server.grpc_ports:
        for path in Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"):
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def seaweedfs(weed: Path | None = None) -> Iterator[S3Server]:
    """A running S3 server with the bucket ``audio-extract``, stopped and removed at exit."""
    weed = weed or weed_binary()
    tmp = Path(tempfile.mkdtemp(prefix="s3-server-"))
    try:
        for attempt in range(3):
            try:
                server, proc = _start(weed, tmp)
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
