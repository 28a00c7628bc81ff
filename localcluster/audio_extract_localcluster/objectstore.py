"""The local cluster's S3 store: SeaweedFS (`weed server` with its filer and S3 gateway), a host
process like the control plane, with one bucket and one access key.

Only the S3 gateway listens on the node's address (`host.HOST_IP`), where pods and this machine's
S3 clients reach it; the master, volume server and filer listen on 127.0.0.1, so a pod cannot go
round the S3 gateway's signature checks through the filer's unauthenticated HTTP. Telemetry is
off: nothing leaves the machine. The data directory and the key survive a restart of `make dev`
(like a real bucket); the tests' clusters get a fresh one each.
"""

from __future__ import annotations

import json
import secrets
import socket
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from . import host
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    """Any HTTP answer (an unsigned request gets 403): the gateway is up."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def component(bin_dir: Path, root: Path) -> Component:
    found = access(root)
    config = root / "s3-identities.json"
    config.touch(mode=0o600, exist_ok=True)
    config.write_text(json.dumps(identities(found)))
    (root / "data").mkdir(parents=True, exist_ok=True)
    # internal ports chosen free, gRPC ones explicit: weed's default (port + 10000) may be taken
    ports = {name: _free_port() for name in ("master", "volume", "filer")}
    grpc = {name: _free_port() for name in ("master", "volume", "filer", "s3")}
    argv = [
        str(bin_dir / "weed"),
        "server",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={grpc['master']}",
        "-master.volumeSizeLimitMB=1024",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={grpc['volume']}",
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={grpc['filer']}",
        "-s3",
        f"-s3.port={S3_PORT}",
        f"-s3.port.grpc={grpc['s3']}",
        f"-s3.ip.bind={host.HOST_IP}",
        f"-s3.config={config}",
    ]
    return Component(
        "objectstore",
        argv,
        ready=lambda: _answers(f"{found.endpoint_url}/"),
        extra={"url": found.endpoint_url, "access": found},
    )


def create_bucket(found: S3Access) -> None:
    """Create the bucket (idempotent): the gateway answers before its filer takes writes, so retry."""
    import botocore.session
    from botocore.exceptions import ClientError, EndpointConnectionError

    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=found.endpoint_url,
        region_name=found.region,
        aws_access_key_id=found.access_key_id,
        aws_secret_access_key=found.secret_access_key,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            client.create_bucket(Bucket=found.bucket)
            return
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                return
            if time.monotonic() > deadline:
                raise
        except EndpointConnectionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)
