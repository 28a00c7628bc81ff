"""Fixtures of the end-to-end tier (see system.py): `system`, one release per test module in its
own namespace (a module may set `SYSTEM_VALUES`, merged over the development values, and `STORE`:
`s3`, the cluster's S3 store under a prefix per release, the default, or `volume`), `media`
(generated sources on the node's address) and `receiver` (a webhook receiver there)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from system import Receiver, System, merged, project_tag

from audio_extract_dev.media import make_media
from audio_extract_localcluster import release
from audio_extract_localcluster.cluster import LocalCluster
from support.media_server import MediaServer


@pytest.fixture(scope="module")
def system(
    request: pytest.FixtureRequest, cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    namespace = f"e2e-{uuid.uuid4().hex[:6]}"
    keys = release.DevSecrets.of(tmp_path_factory.mktemp("secrets"))
    helm = release.Helm(cluster.bin_dir, cluster.kubeconfig, namespace=namespace)
    s3 = cluster.s3 if getattr(request.module, "STORE", "s3") == "s3" else None
    if s3 is not None:
        cluster.kubectl("apply", "-f", "-", input=release.store_secret(s3, namespace))
    values = merged(
        release.dev_values(project_tag(cluster), keys, node_port=None, s3=s3, store_prefix=namespace),
        getattr(request.module, "SYSTEM_VALUES", {}),
    )
    helm.install(values)
    service = json.loads(
        cluster.kubectl("-n", namespace, "get", "service", "audio-extract-api", "-o", "json").stdout
    )
    api_url = release.api_url(service["spec"]["ports"][0]["nodePort"])
    release.wait_serving(api_url)
    system = System(cluster, namespace, helm, keys, values, api_url)
    try:
        yield system
    finally:
        system.api.close()
        helm("uninstall", release.RELEASE, "--wait", check=False)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def media(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaServer]:
    server = MediaServer(make_media(tmp_path_factory.mktemp("media")), slow_seconds=20).start()
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.httpd.shutdown()
    r.httpd.server_close()
