"""The local cluster's S3 store: SeaweedFS (`weed mini`: master, volume server, filer and S3
gateway in one process), a host process like the control plane, with one bucket and one key.

It listens on the node's address (`host.HOST_IP`), where pods and this machine's S3 clients reach
its S3 port. `weed mini` has one bind address for all its ports (`weed server` could keep the
internal ones on loopback, but takes twice as long to start and over 15 s to stop): the chart's
NetworkPolicies open only the S3 port to a release's pods. Telemetry is off: nothing leaves the
machine. The data directory and the key survive a restart of `make dev` (like a real bucket); the
tests' clusters get a fresh one each. The tests' standalone S3 server (`tests/support/s3_server.py`)
runs the same command on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import host
from .localnet import free_ports
from .processes import Component

S3_PORT = 8333
BUCKET = "audio-extract"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Access:
    """What an S3 client needs; `env()` is the standard AWS environment for it."""

    endpoint_url: str
    region: str
    bucket: str
    access_key_id: str
    secret_access_key: str

    def client(self, verify: str | None = None, **config: Any) -> Any:
        """A botocore S3 client with this key (`verify`: a PEM file of the CAs to trust over
        https, None: the system's; `config`: botocore Config options)."""
        import botocore.session
        from botocore.config import Config

        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            verify=verify,
            config=Config(**config),
        )

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_REGION": self.region,
            "AUDIO_EXTRACT_BUCKET": self.bucket,
        }


def access(root: Path) -> S3Access:
    """The store's key, created on first use and kept in `root` (readable by root only)."""
    path = root / "access.json"
    if path.exists():
        return S3Access(**json.loads(path.read_text()))
    found = S3Access(
        endpoint_url=f"http://{host.HOST_IP}:{S3_PORT}",
        region=REGION,
        bucket=BUCKET,
        access_key_id="AEX" + secrets.token_hex(8).upper(),
        secret_access_key=secrets.token_urlsafe(30),
    )
    root.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(json.dumps(asdict(found)))
    return found


def identities(found: S3Access) -> dict:
    """SeaweedFS's S3 identity file: one key with every right on the store."""
    return {
        "identities": [
            {
                "name": "audio-extract",
                "credentials": [{"accessKey": found.access_key_id, "secretKey": found.secret_access_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }


PORTS = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3_grpc", "admin_grpc")


def mini_argv(
    weed: Path, data: Path, config: Path, ports: dict[str, int], bind: str, volume_mb: int
) -> list[str]:
    """`weed mini` on `bind` with every port chosen (`ports`: PORTS and `s3`), unix sockets in
    `data` (not /tmp) and the servers we do not use (Iceberg, Lance, WebDAV, admin UI) off."""
    return [
        str(weed),
        "-logtostderr",
        "mini",
        f"-ip={bind}",
        f"-ip.bind={bind}",
        f"-dir={data}",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        "-master.telemetry=false",
        f"-master.volumeSizeLimitMB={volume_mb}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        f"-filer.localSocket={data / 'filer.sock'}",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        f"-s3.localSocket={data / 's3.sock'}",
        f"-s3.config={config}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        f"-admin.port.grpc={ports['admin_grpc']}",  # bound even without the UI
        "-admin.port.legacy=0",
    ]


def remove_sockets(ports: dict[str, int]) -> None:
    """weed puts a unix socket per gRPC port in /tmp whatever its flags; a killed weed leaves them."""
    for name, port in ports.items():
        if name.endswith("grpc"):
            for path in Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"):
                path.unlink(missing_ok=True)


def writable(found: S3Access, verify: str | None = None) -> bool:
    """The bucket exists (created here, idempotently) and takes a write: the first write waits
    for the filer to join the master, a few seconds after the S3 port answers (`verify`: as
    for `S3Access.client`)."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = found.client(verify, retries={"max_attempts": 1}, connect_timeout=2, read_timeout=20)
    try:
        with contextlib.suppress(ClientError):  # BucketAlreadyOwnedByYou (kept by make dev)
            client.create_bucket(Bucket=found.bucket)
        client.put_object(Bucket=found.bucket, Key=".ready", Body=b"")
        client.delete_object(Bucket=found.bucket, Key=".ready")
        return True
    except (BotoCoreError, ClientError):  # not listening yet, or not writable yet
        return False
    finally:
        client.close()


def component(bin_dir: Path, root: Path) -> Component:
    found = access(root)
    config = root / "s3-identities.json"
    config.touch(mode=0o600, exist_ok=True)
    config.write_text(json.dumps(identities(found)))
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    ports = free_ports(PORTS, host.HOST_IP) | {"s3": S3_PORT}
    return Component(
        "objectstore",
        mini_argv(bin_dir / "weed", data, config, ports, host.HOST_IP, volume_mb=1024),
        ready=lambda: writable(found),
        stop_timeout=10.0,  # TERM takes 1.5 s idle, over 5 s after a busy test session
        extra={"url": found.endpoint_url, "ports": ports},
    )
