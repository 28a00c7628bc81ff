"""A read-only registry on 127.0.0.1 that serves the images built here, for the node's containerd.

Nothing outside this machine is reachable, yet `imagePullPolicy: Always` (the default for an image
without a tag, as in `kubectl create job hello --image=busybox`) makes the kubelet ask containerd
to pull. containerd's registry configuration (`certs.d/_default/hosts.toml`) sends every registry
name here instead, so such a pull resolves to the image already loaded, and a name that was not
built here fails at once with "not found" instead of a query off the machine.

It speaks the read side of the OCI distribution API (`/v2/`, manifests and blobs by tag or digest)
from the OCI layout archives the cluster imported. Written by hand: the Go registry would be
another binary to build and a push per image, for what is a lookup in files already on disk.

    python -m audio_extract_localcluster.registry --port P archive.oci.tar ...
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tarfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PATH = re.compile(r"^/v2/(?P<repo>.+)/(?P<kind>manifests|blobs)/(?P<ref>[^/]+)$")


@dataclass(frozen=True)
class Descriptor:
    archive: Path
    member: str
    media_type: str
    size: int


def repository_and_tag(image: str) -> tuple[str, str]:
    """`docker.io/library/busybox:latest` -> (`library/busybox`, `latest`): the path a registry
    mirror is asked for (`?ns=docker.io` names the registry)."""
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        name, tag = image, "latest"
    return name.split("/", 1)[1] if "/" in name else name, tag


class Catalog:
    """Tags and blobs of a set of OCI layout archives."""

    def __init__(self, archives: list[Path]) -> None:
        self.tags: dict[tuple[str, str], str] = {}  # (repository, tag) -> manifest digest
        self.blobs: dict[str, Descriptor] = {}
        for archive in archives:
            self._add(archive)

    def _add(self, archive: Path) -> None:
        with tarfile.open(archive) as tar:
            members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}
            index = json.load(tar.extractfile(members["index.json"]))  # type: ignore[arg-type]
            for name, member in members.items():
                if name.startswith("blobs/sha256/"):
                    digest = "sha256:" + name.rsplit("/", 1)[1]
                    self.blobs[digest] = Descriptor(archive, member.name, "", member.size)
            for desc in index.get("manifests", []):
                annotations = desc.get("annotations") or {}
                image = annotations.get("io.containerd.image.name")
                if image:
                    self.tags[repository_and_tag(image)] = desc["digest"]
                known = self.blobs.get(desc["digest"])
                if known is not None:  # manifests are served with the type the index gives them
                    self.blobs[desc["digest"]] = Descriptor(
                        known.archive, known.member, desc["mediaType"], known.size
                    )
                    self._types_of(tar, desc, members)

    def _types_of(self, tar: tarfile.TarFile, desc: dict, members: dict) -> None:
        """Media types of the manifests an image index points to (a multi-platform build)."""
        if "index" not in desc["mediaType"] and "manifest.list" not in desc["mediaType"]:
            return
        member = members.get("blobs/sha256/" + desc["digest"].split(":", 1)[1])
        if member is None:
            return
        for child in json.load(tar.extractfile(member)).get("manifests", []):  # type: ignore[arg-type]
            known = self.blobs.get(child["digest"])
            if known is not None:
                self.blobs[child["digest"]] = Descriptor(
                    known.archive, known.member, child["mediaType"], known.size
                )

    def lookup(self, repository: str, kind: str, ref: str) -> tuple[str, Descriptor] | None:
        digest = ref if ref.startswith("sha256:") else self.tags.get((repository, ref))
        if digest is None or digest not in self.blobs:
            return None
        desc = self.blobs[digest]
        if kind == "manifests" and not desc.media_type:
            return None
        return digest, desc


def handler(catalog: Catalog) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/v2", "/v2/"):
                self._send(200, {"Content-Type": "application/json"}, b"{}" if body else None)
                return
            match = PATH.match(path)
            found = match and catalog.lookup(match["repo"], match["kind"], match["ref"])
            if not found:
                error = {"errors": [{"code": "MANIFEST_UNKNOWN", "message": f"not built here: {path}"}]}
                self._send(
                    404, {"Content-Type": "application/json"}, json.dumps(error).encode() if body else None
                )
                return
            digest, desc = found
            headers = {
                "Content-Type": desc.media_type or "application/octet-stream",
                "Content-Length": str(desc.size),
                "Docker-Content-Digest": digest,
            }
            self.send_response(200)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if body:
                with tarfile.open(desc.archive) as tar:
                    shutil.copyfileobj(tar.extractfile(desc.member), self.wfile)  # type: ignore[arg-type]

        def _send(self, code: int, headers: dict[str, str], payload: bytes | None) -> None:
            self.send_response(code)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload or b"")))
            self.end_headers()
            if payload:
                self.wfile.write(payload)

    return Handler


def hosts_toml(port: int) -> str:
    """containerd's configuration for every registry name: this registry, and no other."""
    url = f"http://127.0.0.1:{port}"
    return f'server = "{url}"\n\n[host."{url}"]\n  capabilities = ["pull", "resolve"]\n'


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve OCI layout archives as a read-only registry.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("archives", type=Path, nargs="+")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(Catalog(args.archives)))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
