"""The read-only registry: a catalog of OCI layout archives (written by oci.py into a temp dir) and
its HTTP side, served on a loopback port in a thread. Expected digests, sizes and bytes are read
back from the archives with tarfile/json/hashlib, not taken from the registry."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import tarfile
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from audio_extract_localcluster import oci, registry

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
BUSYBOX = "docker.io/library/busybox:latest"
PAUSE = "registry.k8s.io/pause:3.10"


@dataclass(frozen=True)
class Archive:
    path: Path
    manifest_digest: str
    manifest: bytes
    config_digest: str
    layer_digest: str
    layer: bytes


def read_archive(path: Path) -> Archive:
    with tarfile.open(path) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]

    def blob(digest: str) -> bytes:
        return files["blobs/sha256/" + digest.split(":", 1)[1]]

    digest = json.loads(files["index.json"])["manifests"][0]["digest"]
    manifest = json.loads(blob(digest))
    layer_digest = manifest["layers"][0]["digest"]
    return Archive(path, digest, blob(digest), manifest["config"]["digest"], layer_digest, blob(layer_digest))


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Archive]:
    d = tmp_path_factory.mktemp("registry")
    busybox, pause = d / "busybox.oci.tar", d / "pause.oci.tar"
    oci.write_image_tar(
        busybox, BUSYBOX, [oci.Entry.text("/bin/busybox", b"\x7fELF busybox")], oci.ImageConfig(cmd=["sh"])
    )
    oci.write_image_tar(pause, PAUSE, [oci.Entry.text("/pause", b"\x7fELF pause")], oci.ImageConfig())
    return {"busybox": read_archive(busybox), "pause": read_archive(pause)}


@pytest.fixture(scope="module")
def catalog(archives: dict[str, Archive]) -> registry.Catalog:
    return registry.Catalog([a.path for a in archives.values()])


@pytest.fixture(scope="module")
def port(catalog: registry.Catalog) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), registry.handler(catalog))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def request(port: int, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- names -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("docker.io/library/busybox:latest", ("library/busybox", "latest")),
        ("docker.io/library/busybox", ("library/busybox", "latest")),
        ("registry.k8s.io/pause:3.10", ("pause", "3.10")),
        ("localhost/debian-python:bookworm", ("debian-python", "bookworm")),
        ("localhost:5000/team/app:v1", ("team/app", "v1")),
        ("localhost:5000/team/app", ("team/app", "latest")),  # the port is no tag
    ],
)
def test_an_image_name_maps_to_the_repository_and_tag_a_mirror_is_asked_for(
    image: str, expected: tuple[str, str]
) -> None:
    assert registry.repository_and_tag(image) == expected


# -- the catalog -----------------------------------------------------------------------------------


def test_a_tag_resolves_to_the_manifest_in_the_index(catalog: registry.Catalog, archives: dict) -> None:
    for key, repository, tag in (("busybox", "library/busybox", "latest"), ("pause", "pause", "3.10")):
        archive = archives[key]
        found = catalog.lookup(repository, "manifests", tag)
        assert found is not None, key
        digest, desc = found
        assert digest == archive.manifest_digest
        assert desc.archive == archive.path
        assert desc.media_type == MANIFEST_TYPE
        assert desc.size == len(archive.manifest)


def test_a_manifest_resolves_by_digest_too(catalog: registry.Catalog, archives: dict) -> None:
    archive = archives["busybox"]
    found = catalog.lookup("library/busybox", "manifests", archive.manifest_digest)
    assert found is not None
    assert found[0] == archive.manifest_digest
    assert found[1].media_type == MANIFEST_TYPE


def test_a_layer_resolves_as_a_blob(catalog: registry.Catalog, archives: dict) -> None:
    archive = archives["pause"]
    found = catalog.lookup("pause", "blobs", archive.layer_digest)
    assert found is not None
    digest, desc = found
    assert digest == archive.layer_digest
    assert (desc.archive, desc.size) == (archive.path, len(archive.layer))


@pytest.mark.parametrize(
    ("repository", "ref"),
    [
        ("library/busybox", "1.36"),  # unknown tag
        ("library/alpine", "latest"),  # unknown repository
        ("library/busybox", "3.10"),  # pause's tag, asked in busybox's repository
        ("busybox", "latest"),  # not the repository the name maps to
    ],
)
def test_an_unknown_tag_is_none(catalog: registry.Catalog, repository: str, ref: str) -> None:
    assert catalog.lookup(repository, "manifests", ref) is None


def test_a_blob_asked_as_a_manifest_is_none(catalog: registry.Catalog, archives: dict) -> None:
    archive = archives["busybox"]
    assert catalog.lookup("library/busybox", "manifests", archive.layer_digest) is None
    assert catalog.lookup("library/busybox", "manifests", archive.config_digest) is None
    # ...while both are there as blobs
    assert catalog.lookup("library/busybox", "blobs", archive.layer_digest) is not None
    assert catalog.lookup("library/busybox", "blobs", archive.config_digest) is not None


def test_an_unknown_digest_is_none(catalog: registry.Catalog) -> None:
    missing = sha256(b"not in any archive")
    assert catalog.lookup("library/busybox", "manifests", missing) is None
    assert catalog.lookup("library/busybox", "blobs", missing) is None


# -- HTTP ------------------------------------------------------------------------------------------


def test_the_api_base_answers_200(port: int) -> None:
    status, _, _ = request(port, "GET", "/v2/")
    assert status == 200


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_a_manifest_by_tag_is_served_with_its_digest_and_media_type(
    port: int, archives: dict, method: str
) -> None:
    archive = archives["busybox"]
    status, headers, body = request(port, method, "/v2/library/busybox/manifests/latest?ns=docker.io")
    assert status == 200
    assert headers["docker-content-digest"] == archive.manifest_digest
    assert headers["content-type"] == MANIFEST_TYPE
    assert int(headers["content-length"]) == len(archive.manifest)
    if method == "GET":
        assert sha256(body) == archive.manifest_digest
        assert body == archive.manifest
    else:
        assert body == b""


def test_a_manifest_by_digest_is_the_same_bytes(port: int, archives: dict) -> None:
    archive = archives["pause"]
    status, headers, body = request(port, "GET", f"/v2/pause/manifests/{archive.manifest_digest}")
    assert status == 200
    assert body == archive.manifest
    assert headers["docker-content-digest"] == archive.manifest_digest


def test_the_second_archive_is_served_by_its_own_name(port: int, archives: dict) -> None:
    status, headers, body = request(port, "GET", "/v2/pause/manifests/3.10?ns=registry.k8s.io")
    assert status == 200
    assert headers["docker-content-digest"] == archives["pause"].manifest_digest
    assert body == archives["pause"].manifest


def test_a_layer_blob_is_served_by_digest(port: int, archives: dict) -> None:
    archive = archives["busybox"]
    status, headers, body = request(port, "GET", f"/v2/library/busybox/blobs/{archive.layer_digest}")
    assert status == 200
    assert body == archive.layer
    assert sha256(body) == archive.layer_digest
    assert headers["docker-content-digest"] == archive.layer_digest
    assert int(headers["content-length"]) == len(archive.layer)


@pytest.mark.parametrize(
    "path",
    [
        "/v2/library/alpine/manifests/latest?ns=docker.io",
        "/v2/library/busybox/manifests/1.36?ns=docker.io",
        f"/v2/library/busybox/blobs/{sha256(b'nothing')}",
        "/v2/library/busybox/tags/list",
    ],
)
def test_an_unknown_image_or_blob_is_a_404_with_a_json_error(port: int, path: str) -> None:
    status, headers, body = request(port, "GET", path)
    assert status == 404
    assert headers["content-type"] == "application/json"
    errors = json.loads(body)["errors"]
    assert errors and all(e.get("code") and e.get("message") for e in errors)


def test_a_head_for_an_unknown_manifest_sends_no_body(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"HEAD /v2/library/alpine/manifests/latest HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.split(b"\r\n", 1)[0].split()[1] == b"404"
    assert rest == b""


# -- containerd's configuration --------------------------------------------------------------------


def test_hosts_toml_sends_every_pull_to_this_registry() -> None:
    parsed = tomllib.loads(registry.hosts_toml(5123))
    assert parsed["server"] == "http://127.0.0.1:5123"
    assert set(parsed["host"]) == {"http://127.0.0.1:5123"}
    assert sorted(parsed["host"]["http://127.0.0.1:5123"]["capabilities"]) == ["pull", "resolve"]
