"""The OCI image-layout writer: a tiny image is built in tmp_path and read back with the standard
library only (tarfile, gzip, json, hashlib), so every expectation comes from the OCI image spec and
the inputs, never from the writer's own output."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from audio_extract_localcluster import oci

# media types as the OCI image spec spells them
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"

NAME = "docker.io/library/tiny:1.0"
TOOL = b"#!/bin/sh\necho tiny\n"
SETTINGS = "key=value\n"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def entries(tool: Path, settings: str = SETTINGS, settings_mode: int = 0o600) -> list[oci.Entry]:
    return [
        oci.Entry.file("/usr/local/bin/tool", tool, mode=0o755),
        oci.Entry.text("/etc/tiny/settings.conf", settings, mode=settings_mode),
        oci.Entry.dir("/etc/tiny", mode=0o750),  # an explicit parent keeps its own mode
        oci.Entry.symlink("/usr/bin/tool", "/usr/local/bin/tool"),
        oci.Entry("/home/app", "dir", 0o700, uid=65532, gid=65532),
    ]


CONFIG = oci.ImageConfig(
    entrypoint=["/usr/local/bin/tool"],
    cmd=["--help"],
    env={"PATH": "/usr/local/bin:/usr/bin", "LANG": "C.UTF-8"},
    user="65532:65532",
    workdir="/home/app",
)


def build(dest_dir: Path, tool_content: bytes = TOOL, **kwargs) -> tuple[Path, str]:
    """Writes the tiny image to `dest_dir/image.oci.tar`; returns the tar and the returned digest."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    src = dest_dir / "src"
    src.mkdir(exist_ok=True)
    tool = src / "tool"
    tool.write_bytes(tool_content)
    dest = dest_dir / "image.oci.tar"
    digest = oci.write_image_tar(dest, NAME, entries(tool, **kwargs), CONFIG, comment="tiny layer")
    return dest, digest


def members(archive: Path) -> dict[str, bytes]:
    """Every regular file of the tar, by name."""
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def blob(files: dict[str, bytes], digest: str) -> bytes:
    algorithm, hexdigest = digest.split(":", 1)
    return files[f"blobs/{algorithm}/{hexdigest}"]


class Image:
    """The parts of an OCI layout tar, located by following index -> manifest -> config/layers."""

    def __init__(self, archive: Path) -> None:
        self.files = members(archive)
        self.index = json.loads(self.files["index.json"])
        self.descriptor = self.index["manifests"][0]
        self.manifest_bytes = blob(self.files, self.descriptor["digest"])
        self.manifest = json.loads(self.manifest_bytes)
        self.config_bytes = blob(self.files, self.manifest["config"]["digest"])
        self.config = json.loads(self.config_bytes)
        self.layer_bytes = [blob(self.files, layer["digest"]) for layer in self.manifest["layers"]]

    def layer_tar(self, i: int = 0) -> tarfile.TarFile:
        return tarfile.open(fileobj=io.BytesIO(gzip.decompress(self.layer_bytes[i])))


@pytest.fixture
def image(tmp_path: Path) -> tuple[Image, str]:
    archive, digest = build(tmp_path)
    return Image(archive), digest


def test_the_layout_marker_and_the_index_name_the_image(image: tuple[Image, str]) -> None:
    img, digest = image
    assert json.loads(img.files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    assert img.index["schemaVersion"] == 2
    assert img.index["mediaType"] == INDEX_TYPE
    assert len(img.index["manifests"]) == 1
    annotations = img.descriptor["annotations"]
    assert annotations["io.containerd.image.name"] == NAME
    assert annotations["org.opencontainers.image.ref.name"] == "1.0"
    assert img.descriptor["digest"] == digest  # what write_image_tar returns is the indexed manifest


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        ("docker.io/library/busybox:latest", "latest"),
        ("localhost/debian-python:bookworm", "bookworm"),
        ("registry.k8s.io/pause:3.10", "3.10"),
        ("localhost:5000/team/app:v2", "v2"),
        ("localhost:5000/team/app", "latest"),  # a registry port is not a tag
        ("docker.io/library/busybox", "latest"),
    ],
)
def test_the_ref_name_annotation_is_the_tag_of_the_reference(tmp_path: Path, name: str, tag: str) -> None:
    dest = tmp_path / "image.oci.tar"
    oci.write_image_tar(dest, name, [oci.Entry.text("/hello", "hi")], oci.ImageConfig())
    annotations = json.loads(members(dest)["index.json"])["manifests"][0]["annotations"]
    assert annotations == {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag}


def test_every_blob_is_stored_under_the_sha256_of_its_bytes(image: tuple[Image, str]) -> None:
    img, _ = image
    blobs = {name: data for name, data in img.files.items() if name.startswith("blobs/")}
    assert len(blobs) == 3  # config, manifest, one layer
    for name, data in blobs.items():
        assert name == "blobs/sha256/" + hashlib.sha256(data).hexdigest()


def test_the_index_descriptor_matches_the_manifest_blob(image: tuple[Image, str]) -> None:
    img, _ = image
    assert img.descriptor["mediaType"] == MANIFEST_TYPE
    assert img.descriptor["digest"] == sha256(img.manifest_bytes)
    assert img.descriptor["size"] == len(img.manifest_bytes)
    assert img.descriptor["platform"] == {"os": "linux", "architecture": "amd64"}


def test_the_manifest_descriptors_match_the_config_and_layer_blobs(image: tuple[Image, str]) -> None:
    img, _ = image
    assert img.manifest["schemaVersion"] == 2
    assert img.manifest["mediaType"] == MANIFEST_TYPE
    config = img.manifest["config"]
    assert config["mediaType"] == CONFIG_TYPE
    assert config["digest"] == sha256(img.config_bytes)
    assert config["size"] == len(img.config_bytes)
    [layer] = img.manifest["layers"]
    assert layer["mediaType"] == LAYER_TYPE
    assert layer["digest"] == sha256(img.layer_bytes[0])
    assert layer["size"] == len(img.layer_bytes[0])


def test_the_config_carries_platform_runtime_settings_and_the_uncompressed_diff_id(
    image: tuple[Image, str],
) -> None:
    img, _ = image
    cfg = img.config
    assert cfg["os"] == "linux"
    assert cfg["architecture"] == "amd64"
    runtime = cfg["config"]
    assert runtime["Entrypoint"] == ["/usr/local/bin/tool"]
    assert runtime["Cmd"] == ["--help"]
    assert runtime["User"] == "65532:65532"
    assert runtime["WorkingDir"] == "/home/app"
    assert sorted(runtime["Env"]) == ["LANG=C.UTF-8", "PATH=/usr/local/bin:/usr/bin"]
    uncompressed = gzip.decompress(img.layer_bytes[0])
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": [sha256(uncompressed)]}
    assert cfg["rootfs"]["diff_ids"][0] != img.manifest["layers"][0]["digest"]
    assert [h["created_by"] for h in cfg["history"]] == ["tiny layer"]


def test_an_unset_runtime_field_is_left_out_and_path_defaults_to_the_usual_one(tmp_path: Path) -> None:
    dest = tmp_path / "image.oci.tar"
    oci.write_image_tar(dest, "localhost/bare:1", [oci.Entry.text("/hello", "hi")], oci.ImageConfig())
    runtime = Image(dest).config["config"]
    assert runtime == {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}


def test_the_layer_holds_the_files_at_their_image_paths_with_their_modes_and_parents(
    image: tuple[Image, str],
) -> None:
    img, _ = image
    with img.layer_tar() as tar:
        infos = tar.getmembers()
        by_name = {m.name: m for m in infos}
        assert set(by_name) == {
            "usr", "usr/local", "usr/local/bin", "usr/local/bin/tool",
            "usr/bin", "usr/bin/tool",
            "etc", "etc/tiny", "etc/tiny/settings.conf",
            "home", "home/app",
        }  # fmt: skip
        tool = by_name["usr/local/bin/tool"]
        assert tool.isfile() and tool.mode == 0o755
        assert tar.extractfile(tool).read() == TOOL  # type: ignore[union-attr]
        settings = by_name["etc/tiny/settings.conf"]
        assert settings.isfile() and settings.mode == 0o600
        assert tar.extractfile(settings).read() == SETTINGS.encode()  # type: ignore[union-attr]
        link = by_name["usr/bin/tool"]
        assert link.issym() and link.linkname == "/usr/local/bin/tool"
        # added parents are 0755 directories; a parent given explicitly keeps its mode
        for parent in ("usr", "usr/local", "usr/local/bin", "usr/bin", "etc", "home"):
            assert by_name[parent].isdir() and by_name[parent].mode == 0o755, parent
        assert by_name["etc/tiny"].isdir() and by_name["etc/tiny"].mode == 0o750
        home = by_name["home/app"]
        assert home.isdir() and home.mode == 0o700 and (home.uid, home.gid) == (65532, 65532)
        # fixed metadata, and every directory comes before what it holds
        for info in infos:
            assert info.mtime == 0, info.name
            assert (info.uname, info.gname) == ("", ""), info.name
        position = {m.name: i for i, m in enumerate(infos)}
        for name in position:
            parent = os.path.dirname(name)
            if parent:
                assert position[parent] < position[name], name


def test_the_gzip_header_has_no_timestamp_and_no_file_name(image: tuple[Image, str]) -> None:
    img, _ = image
    header = img.layer_bytes[0][:10]  # RFC 1952: ID1 ID2 CM FLG MTIME(4) XFL OS
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] & 0x08 == 0  # FNAME
    assert header[4:8] == b"\0\0\0\0"


def test_the_outer_tar_has_fixed_metadata_and_sorted_members(tmp_path: Path) -> None:
    archive, _ = build(tmp_path)
    with tarfile.open(archive) as tar:
        infos = tar.getmembers()
    names = [m.name for m in infos]
    assert names == sorted(names)
    assert {"index.json", "oci-layout"} <= set(names)
    for info in infos:
        assert (info.mtime, info.uid, info.gid, info.mode) == (0, 0, 0, 0o644), info.name


def test_nothing_but_the_archive_is_left_next_to_it(tmp_path: Path) -> None:
    archive, _ = build(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([archive.name, "src"])


def test_two_builds_of_the_same_inputs_are_byte_identical(tmp_path: Path) -> None:
    first, first_digest = build(tmp_path / "a")
    # elsewhere, and with the host file's mtime changed: only content and given metadata count
    os.utime(tmp_path / "a" / "src" / "tool", ns=(1, 1))
    second, second_digest = build(tmp_path / "b")
    os.utime(tmp_path / "b" / "src" / "tool", ns=(2_000_000_000_000_000_000, 2_000_000_000_000_000_000))
    third, third_digest = build(tmp_path / "c")
    assert first.read_bytes() == second.read_bytes() == third.read_bytes()
    assert first_digest == second_digest == third_digest


@pytest.mark.parametrize(
    "change",
    [
        {"tool_content": TOOL + b"echo more\n"},
        {"settings": "key=other\n"},
        {"settings_mode": 0o644},
    ],
    ids=["host-file-content", "inline-content", "mode"],
)
def test_changing_one_file_changes_the_manifest_digest(tmp_path: Path, change: dict) -> None:
    before, before_digest = build(tmp_path / "before")
    after, after_digest = build(tmp_path / "after", **change)
    old, new = Image(before), Image(after)
    assert before_digest != after_digest
    assert old.descriptor["digest"] != new.descriptor["digest"]
    assert old.manifest["layers"][0]["digest"] != new.manifest["layers"][0]["digest"]
    assert old.config["rootfs"]["diff_ids"] != new.config["rootfs"]["diff_ids"]


def test_the_lower_level_functions_write_a_multi_layer_layout(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    rootfs = io.BytesIO()
    with tarfile.open(fileobj=rootfs, mode="w") as tar:
        info = tarfile.TarInfo("etc/os-release")
        info.size = 11
        tar.addfile(info, io.BytesIO(b"ID=example\n"))
    rootfs_tar = tmp_path / "rootfs.tar"
    rootfs_tar.write_bytes(rootfs.getvalue())

    base = oci.layer_from_tar(layout, rootfs_tar, comment="base")
    top = oci.layer_from_entries(layout, [oci.Entry.text("/app/run", "x", mode=0o755)], comment="app")
    digest = oci.write_layout(layout, "localhost/two:layers", [base, top], oci.ImageConfig(cmd=["/app/run"]))

    def read(d: str) -> bytes:
        return (layout / "blobs" / "sha256" / d.split(":", 1)[1]).read_bytes()

    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest == oci.manifest_digest(layout)
    manifest_bytes = read(digest)
    assert sha256(manifest_bytes) == digest
    manifest = json.loads(manifest_bytes)
    layer_blobs = [read(layer["digest"]) for layer in manifest["layers"]]
    assert [sha256(b) for b in layer_blobs] == [base.digest, top.digest]
    assert [len(b) for b in layer_blobs] == [base.size, top.size]
    # a root file system tar becomes a layer byte for byte
    assert gzip.decompress(layer_blobs[0]) == rootfs.getvalue()
    config = json.loads(read(manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == [sha256(gzip.decompress(b)) for b in layer_blobs]
    assert [h["created_by"] for h in config["history"]] == ["base", "app"]
    # no stray temporary files among the blobs
    stored = {p.name for p in (layout / "blobs" / "sha256").iterdir()}
    assert stored == {
        d.split(":", 1)[1] for d in (digest, manifest["config"]["digest"], base.digest, top.digest)
    }
