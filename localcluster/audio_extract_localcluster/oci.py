"""A minimal, deterministic OCI image writer (standard library only).

No registry is reachable here, so the small images the node runs (pause, busybox, CoreDNS) and
the Debian base of the project image are written by this module: one gzip layer, an image config
(os/architecture, entrypoint, env, user), a manifest, and an OCI image layout (`oci-layout`,
`index.json`, `blobs/sha256/...`) as a directory (what `buildctl --oci-layout` reads) or as a tar
(what `ctr images import` reads).

Everything is deterministic — fixed mtimes and owners, sorted entries, gzip without a name or
timestamp — so the same inputs give the same digests, and containerd and BuildKit reuse what they
already hold. The index is annotated with `io.containerd.image.name` (the full name containerd
imports the image under) and `org.opencontainers.image.ref.name` (the tag).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
EPOCH = "1970-01-01T00:00:00Z"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One file system entry of a layer: a file (from a host path or bytes), a directory or a symlink."""

    path: str  # in the image, absolute
    kind: str  # "file", "dir" or "symlink"
    mode: int = 0o755
    source: Path | None = None  # file content from the host
    data: bytes | None = None  # or given inline
    target: str = ""  # symlink target
    uid: int = 0
    gid: int = 0

    @classmethod
    def file(cls, path: str, source: Path, mode: int = 0o755) -> Entry:
        return cls(path, "file", mode, source=Path(source))

    @classmethod
    def text(cls, path: str, data: str | bytes, mode: int = 0o644) -> Entry:
        return cls(path, "file", mode, data=data.encode() if isinstance(data, str) else data)

    @classmethod
    def dir(cls, path: str, mode: int = 0o755) -> Entry:
        return cls(path, "dir", mode)

    @classmethod
    def symlink(cls, path: str, target: str) -> Entry:
        return cls(path, "symlink", 0o777, target=target)

    @property
    def name(self) -> str:
        """The tar member name: relative, normalised."""
        return str(PurePosixPath("/", self.path).relative_to("/"))


@dataclass(frozen=True)
class ImageConfig:
    """The runtime part of an image config (the fields Docker and containerd read)."""

    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: dict[str, str] = field(default_factory=lambda: {"PATH": DEFAULT_PATH})
    user: str = ""
    workdir: str = ""

    def as_dict(self) -> dict:
        out: dict = {"Env": [f"{k}={v}" for k, v in self.env.items()]}
        for key, value in (
            ("Entrypoint", self.entrypoint),
            ("Cmd", self.cmd),
            ("User", self.user),
            ("WorkingDir", self.workdir),
        ):
            if value:
                out[key] = value
        return out


@dataclass(frozen=True)
class Layer:
    digest: str  # of the gzip blob ("sha256:...")
    size: int
    diff_id: str  # of the uncompressed tar
    comment: str = ""


class _Hashing(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through to `sink` (None: nowhere)."""

    def __init__(self, sink=None) -> None:
        self.sink, self.sha, self.size = sink, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.sha.update(b)
        self.size += len(b)
        if self.sink is not None:
            self.sink.write(b)
        return len(b)


def _blob_path(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


def _write_layer(layout: Path, fill, comment: str, level: int) -> Layer:
    """Streams a layer into the layout's blobs: `fill(out)` writes the uncompressed tar to `out`;
    both the gzip digest and the uncompressed diff_id are computed on the way."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=blobs, delete=False) as tmp:
        compressed = _Hashing(tmp)
        with gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=level, mtime=0, filename="") as gz:
            plain = _Hashing(gz)
            fill(plain)
    layer = Layer(
        f"sha256:{compressed.sha.hexdigest()}", compressed.size, f"sha256:{plain.sha.hexdigest()}", comment
    )
    os.replace(tmp.name, _blob_path(layout, layer.digest))
    return layer


def _with_parents(entries: Iterable[Entry]) -> list[Entry]:
    """The entries plus any missing parent directory (0755), sorted so parents come first."""
    by_name = {e.name: e for e in entries}
    for name in list(by_name):
        for parent in PurePosixPath(name).parents:
            if str(parent) != "." and str(parent) not in by_name:
                by_name[str(parent)] = Entry.dir(str(parent))
    return [by_name[n] for n in sorted(by_name)]


def _tarinfo(entry: Entry) -> tuple[tarfile.TarInfo, io.IOBase | None]:
    info = tarfile.TarInfo(entry.name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, entry.uid, entry.gid, "", ""
    info.mode = entry.mode
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
        return info, None
    if entry.kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, entry.target
        return info, None
    if entry.data is not None:
        info.size = len(entry.data)
        return info, io.BytesIO(entry.data)
    info.size = entry.source.stat().st_size
    return info, entry.source.open("rb")


def layer_from_entries(layout: Path, entries: Iterable[Entry], comment: str = "", level: int = 6) -> Layer:
    """Writes one layer holding `entries` (parents added) into the layout's blobs."""
    ordered = _with_parents(entries)

    def fill(out) -> None:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for entry in ordered:
                info, content = _tarinfo(entry)
                try:
                    tar.addfile(info, content)
                finally:
                    if content is not None:
                        content.close()

    return _write_layer(layout, fill, comment, level)


def layer_from_tar(layout: Path, rootfs_tar: Path, comment: str = "", level: int = 6) -> Layer:
    """Writes an existing root file system tar (e.g. mmdebstrap's) as one layer, byte for byte."""

    def fill(out) -> None:
        with rootfs_tar.open("rb") as src:
            shutil.copyfileobj(src, out, CHUNK)

    return _write_layer(layout, fill, comment, level)


def _put_json(layout: Path, obj: dict) -> tuple[str, int]:
    data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    path = _blob_path(layout, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest, len(data)


def write_layout(layout: Path, name: str, layers: list[Layer], config: ImageConfig) -> str:
    """Writes the config, manifest, `index.json` and `oci-layout` of an image whose layer blobs are
    already in `layout`; returns the manifest digest. `name` is the full reference
    (`docker.io/library/busybox:latest`)."""
    platform = {"architecture": "amd64", "os": "linux"}
    cfg = {
        **platform,
        "created": EPOCH,
        "config": config.as_dict(),
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": EPOCH, "created_by": layer.comment or "oci.py"} for layer in layers],
    }
    cfg_digest, cfg_size = _put_json(layout, cfg)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": cfg_digest, "size": cfg_size},
        "layers": [{"mediaType": LAYER_GZIP, "digest": layer.digest, "size": layer.size} for layer in layers],
    }
    digest, size = _put_json(layout, manifest)
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": MANIFEST,
                "digest": digest,
                "size": size,
                "platform": platform,
                "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index, sort_keys=True, indent=1))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return digest


def manifest_digest(layout: Path) -> str:
    """The digest of the (single) manifest of an OCI layout directory."""
    return json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]


def pack_layout(layout: Path, dest: Path) -> None:
    """Tars an OCI layout directory (uncompressed: its blobs are compressed already), sorted and with
    fixed metadata; written next to `dest` and renamed, so a reader never sees half a file."""
    files = sorted(p for p in layout.rglob("*") if p.is_file())
    tmp = dest.with_name(f".{dest.name}.tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            info = tarfile.TarInfo(str(path.relative_to(layout)))
            info.size, info.mode, info.mtime = path.stat().st_size, 0o644, 0
            with path.open("rb") as f:
                tar.addfile(info, f)
    os.replace(tmp, dest)


def write_image_tar(
    dest: Path, name: str, entries: Iterable[Entry], config: ImageConfig, comment: str = ""
) -> str:
    """A one-layer image as an OCI layout tar at `dest`; returns its manifest digest."""
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".layout-") as tmp:
        layout = Path(tmp)
        layer = layer_from_entries(layout, entries, comment)
        digest = write_layout(layout, name, [layer], config)
        pack_layout(layout, dest)
    return digest
