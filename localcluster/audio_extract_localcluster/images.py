"""The images the local node runs, built on this machine: no image registry is reachable here.

- `PAUSE_IMAGE`: Kubernetes' own `build/pause/linux/pause.c` (from the Go module cache), compiled
  statically with gcc; named as containerd's default sandbox image, so nothing looks elsewhere.
- `BUSYBOX_IMAGE`: Debian's busybox-static with its applet links (`sh`, `nc`, ...), so the
  README's `kubectl create job hello --image=busybox -- sh -c 'echo hello'` works.
- `COREDNS_IMAGE`: the CoreDNS binary built by `build-binaries.sh`, as uid 65532 (it binds port 53
  through the pod's `net.ipv4.ip_unprivileged_port_start` sysctl, not a capability).
- `BASE_IMAGE`: Debian bookworm with Python from `mmdebstrap`, the base of the project image
  (the Dockerfile's `PYTHON_IMAGE`); it carries this machine's CA bundle and pip configuration so
  `RUN pip install` and `RUN apt-get` inside the build work as they do on the host.
- `PROJECT_IMAGE`: the top-level Dockerfile built by BuildKit (`buildkit.py`).

Everything is cached under `$AUDIO_EXTRACT_CACHE/images` (default `~/.cache/audio-extract`), keyed
by its inputs, so a second call costs a few stat calls. `python -m audio_extract_localcluster.images`
(`make image`) builds them all and copies the project image to `.local/images/audio-extract.oci.tar`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from . import host, node, oci

Report = Callable[[str], None] | None

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE.parent / "build-binaries.sh"
RECIPE = "1"  # part of every cache key: bump it when the way an image is made changes


def _script_version(name: str, default: str) -> str:
    """A version pinned in build-binaries.sh, the single source of truth for versions."""
    with contextlib.suppress(OSError):
        if m := re.search(rf"^{name}=(\S+)", BUILD_SCRIPT.read_text(), re.M):
            return m.group(1)
    return default


K8S_VERSION = _script_version("K8S_VERSION", "v1.36.3")
COREDNS_VERSION = _script_version("COREDNS_VERSION", "v1.15.0")

PROJECT_IMAGE = "docker.io/library/audio-extract:dev"
# containerd v2.4.2's default sandbox image (internal/cri/config: DefaultSandboxImage), which is
# also the TAG of Kubernetes v1.36.3's build/pause/Makefile, whose pause.c is compiled here.
PAUSE_IMAGE = "registry.k8s.io/pause:3.10.2"
BUSYBOX_IMAGE = "docker.io/library/busybox:latest"
COREDNS_IMAGE = f"localhost/coredns:{COREDNS_VERSION}"
BASE_IMAGE = "localhost/debian-python:bookworm"


def cache_dir() -> Path:
    root = Path(os.environ.get("AUDIO_EXTRACT_CACHE") or Path.home() / ".cache" / "audio-extract")
    (root / "images").mkdir(parents=True, exist_ok=True)
    return root / "images"


def fingerprint(*parts: object) -> str:
    """A cache key: paths count by size and mtime (cheap for a 100 MB binary), the rest by value."""

    def norm(p: object) -> object:
        if isinstance(p, Path):
            st = p.stat()
            return [str(p), st.st_size, st.st_mtime_ns]
        return p

    return hashlib.sha256(json.dumps([RECIPE, *map(norm, parts)]).encode()).hexdigest()[:16]


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """One builder at a time (the cluster fixture and `make image` may run together)."""
    with (cache_dir() / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _cached(stem: str, key: str, suffix: str, build: Callable[[Path], None], report: Report) -> Path:
    """`<cache>/<stem>-<key><suffix>`, built by `build(path)` when missing; older keys removed."""
    path = cache_dir() / f"{stem}-{key}{suffix}"
    if path.exists():
        return path
    with locked():
        if path.exists():
            return path
        started = time.monotonic()
        build(path)
        for old in cache_dir().glob(f"{stem}-*{suffix}"):
            if old != path:
                shutil.rmtree(old) if old.is_dir() else old.unlink()
        if report:
            report(f"image {stem} built in {time.monotonic() - started:.1f} s")
    return path


def _run(argv: list, **kw) -> str:
    return subprocess.run([str(a) for a in argv], check=True, text=True, capture_output=True, **kw).stdout


# -- pause ---------------------------------------------------------------------------------------


def _kubernetes_module() -> Path:
    """k8s.io/kubernetes in the Go module cache (downloaded by build-binaries.sh; else here)."""
    modcache = os.environ.get("GOMODCACHE") or Path(
        (os.environ.get("GOPATH") or str(Path.home() / "go")).split(os.pathsep)[0], "pkg", "mod"
    )
    path = Path(modcache) / "k8s.io" / f"kubernetes@{K8S_VERSION}"
    if not path.is_dir():
        info = _run(["go", "mod", "download", "-json", f"k8s.io/kubernetes@{K8S_VERSION}"])
        path = Path(json.loads(info)["Dir"])
    return path


def pause_image(report: Report = None) -> Path:
    src = _kubernetes_module() / "build" / "pause"
    tag = re.search(r"^TAG \?= (\S+)", (src / "Makefile").read_text(), re.M).group(1)
    # the flags of build/pause/Makefile (its VERSION is v$(TAG)-$(git describe))
    cflags = ["-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{tag}-{K8S_VERSION}"]
    source = (src / "linux" / "pause.c").read_bytes()

    def build(dest: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            binary = Path(tmp) / "pause"
            _run(["gcc", *cflags, "-o", binary, src / "linux" / "pause.c"])
            _run(["strip", binary])
            oci.write_image_tar(
                dest,
                PAUSE_IMAGE,
                [oci.Entry.file("/pause", binary)],
                oci.ImageConfig(entrypoint=["/pause"], user="65535:65535"),
                comment=f"pause.c of k8s.io/kubernetes {K8S_VERSION}, gcc {' '.join(cflags)}",
            )

    key = fingerprint(PAUSE_IMAGE, cflags, hashlib.sha256(source).hexdigest())
    return _cached("pause", key, ".oci.tar", build, report)


# -- busybox -------------------------------------------------------------------------------------

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
GROUP = "root:x:0:\nnobody:x:65534:\n"


def _busybox_binary() -> Path:
    """Debian's statically linked busybox (the dynamic `busybox` package would not run in an image
    without a libc)."""
    try:
        files = _run(["dpkg", "-L", "busybox-static"]).split()
    except (OSError, subprocess.CalledProcessError) as e:
        raise RuntimeError("busybox-static is not installed: run 'make system-deps'") from e
    return Path(next(f for f in files if f.endswith("/busybox")))


def busybox_image(report: Report = None) -> Path:
    binary = _busybox_binary()

    def build(dest: Path) -> None:
        applets = _run([binary, "--list-full"]).split()
        entries = [oci.Entry.file("/bin/busybox", binary)]
        entries += [oci.Entry.symlink(f"/{a}", "/bin/busybox") for a in applets if a != "bin/busybox"]
        entries += [
            oci.Entry.text("/etc/passwd", PASSWD),
            oci.Entry.text("/etc/group", GROUP),
            oci.Entry.dir("/root", 0o700),
            oci.Entry.dir("/tmp", 0o1777),
            oci.Entry.dir("/home"),
        ]
        oci.write_image_tar(
            dest,
            BUSYBOX_IMAGE,
            entries,
            oci.ImageConfig(cmd=["sh"]),
            comment=f"Debian busybox-static {binary}",
        )

    return _cached("busybox", fingerprint(BUSYBOX_IMAGE, binary), ".oci.tar", build, report)


# -- coredns -------------------------------------------------------------------------------------


def coredns_image(bin_dir: Path, report: Report = None) -> Path:
    binary = Path(bin_dir) / "coredns"

    def build(dest: Path) -> None:
        oci.write_image_tar(
            dest,
            COREDNS_IMAGE,
            [oci.Entry.file("/coredns", binary)],
            oci.ImageConfig(entrypoint=["/coredns"], user="65532:65532"),
            comment=f"coredns {COREDNS_VERSION} built by build-binaries.sh",
        )

    return _cached("coredns", fingerprint(COREDNS_IMAGE, binary), ".oci.tar", build, report)


def node_images(bin_dir: Path, report: Report = None) -> list[Path]:
    """OCI archives of the pause, busybox and CoreDNS images (built or cached)."""
    return [pause_image(report), busybox_image(report), coredns_image(bin_dir, report)]


# -- the Debian base of the project image ----------------------------------------------------------

APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
HOST_LOCAL_CAS = Path("/usr/local/share/ca-certificates")
HOST_PIP_CONF = Path("/etc/pip.conf")
BASE_PACKAGES = "python3,python3-venv,python-is-python3,ca-certificates"
DPKG_EXCLUDES = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/lintian/*",
)
# Runs on the host with the new root as $1: the machine's trust store and pip settings go into the
# base (the only way this machine reaches PyPI and the mirror); the host's name and resolver do not.
BASE_HOOK = (
    f'if [ -f {HOST_CA_BUNDLE} ]; then cp {HOST_CA_BUNDLE} "$1{HOST_CA_BUNDLE}"; fi; '
    f'if [ -d {HOST_LOCAL_CAS} ]; then cp -r {HOST_LOCAL_CAS}/. "$1{HOST_LOCAL_CAS}/"; fi; '
    f'if [ -f {HOST_PIP_CONF} ]; then cp {HOST_PIP_CONF} "$1{HOST_PIP_CONF}"; fi; '
    'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1/etc/hostname" "$1/etc/resolv.conf"; '
    'printf "127.0.0.1 localhost\\n::1 localhost ip6-localhost ip6-loopback\\n" > "$1/etc/hosts"'
)
BASE_CONFIG = oci.ImageConfig(cmd=["python3"], env={"PATH": oci.DEFAULT_PATH, "LANG": "C.UTF-8"})


def _apt_sources() -> list[Path]:
    """The machine's own Debian sources (its mirror, suites and keyring), pasted into the base."""
    for path in APT_SOURCES:
        if path.is_file() and any(
            line.strip() and not line.lstrip().startswith("#") for line in path.read_text().splitlines()
        ):
            return [path]
    return []  # mmdebstrap's default: deb.debian.org with updates and security


def base_image(report: Report = None) -> Path:
    """An OCI layout *directory* (what `buildctl --oci-layout` reads) of Debian bookworm + Python."""
    sources = _apt_sources()
    # merged-usr: merged /usr from the start, so apt does not pick `usrmerge` (and 50 MB of perl);
    # force-unsafe-io: no fsync per file (here and in the build's own apt-get runs)
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        f"--include={BASE_PACKAGES}",
        "--format=tar",
        "--skip=output/dev",
        "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
        "--dpkgopt=force-unsafe-io",
        *(f"--dpkgopt={o}" for o in DPKG_EXCLUDES),
        f"--customize-hook={BASE_HOOK}",
        "bookworm",
    ]
    copied = [*sources, HOST_CA_BUNDLE, HOST_PIP_CONF, *sorted(HOST_LOCAL_CAS.rglob("*"))]
    inputs = [[str(p), hashlib.sha256(p.read_bytes()).hexdigest()] for p in copied if p.is_file()]

    def build(dest: Path) -> None:
        if not shutil.which("mmdebstrap"):
            raise RuntimeError("mmdebstrap is not installed: run 'make system-deps'")
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        rootfs = tmp / "rootfs.tar"
        t0 = time.monotonic()
        proc = subprocess.run([*argv, rootfs, *sources], capture_output=True, text=True)
        if proc.returncode:
            sys.stderr.write(proc.stderr[-4000:])
            raise RuntimeError(f"mmdebstrap failed ({proc.returncode})")
        t1 = time.monotonic()
        layer = oci.layer_from_tar(tmp, rootfs, comment=f"mmdebstrap bookworm --include={BASE_PACKAGES}")
        rootfs.unlink()
        oci.write_layout(tmp, BASE_IMAGE, [layer], BASE_CONFIG)
        os.replace(tmp, dest)
        if report:
            report(
                f"base image: mmdebstrap {t1 - t0:.1f} s, layer {time.monotonic() - t1:.1f} s "
                f"({layer.size / 1e6:.0f} MB compressed)"
            )

    return _cached("debian-python", fingerprint(BASE_IMAGE, argv, inputs), "", build, report)


# -- import into containerd ------------------------------------------------------------------------


def archive_image(tar: Path) -> tuple[str, str]:
    """(name, manifest digest) of a single-image OCI archive, from its `index.json`."""
    with tarfile.open(tar) as archive:
        index = json.load(archive.extractfile("index.json"))
    manifest = index["manifests"][0]
    return manifest["annotations"]["io.containerd.image.name"], manifest["digest"]


def import_images(bin_dir: Path, containerd_socket: Path, tars: list[Path]) -> None:
    """Imports OCI archives into containerd's `k8s.io` namespace (the CRI's), unpacked for the
    default snapshotter, so pods with `imagePullPolicy: IfNotPresent`/`Never` start from them.
    An archive whose image containerd already holds, same digest and unpacked, is skipped (an
    import re-reads the whole archive: ~3 s for the project image even when nothing is new)."""
    ctr = [str(Path(bin_dir) / "ctr"), "-a", str(Path(containerd_socket).absolute()), "-n", "k8s.io"]
    # REF TYPE DIGEST STATUS SIZE UNPACKED, one line per image
    rows = [line.split() for line in _run([*ctr, "images", "check"]).splitlines()[1:]]
    ready = {(row[0], row[2]) for row in rows if len(row) > 3 and row[-1] == "true"}
    for tar in tars:
        if archive_image(tar) in ready:
            continue
        proc = subprocess.run([*ctr, "images", "import", str(tar)], capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"ctr images import {tar} failed: {proc.stderr.strip()[-2000:]}")


# -- make image -----------------------------------------------------------------------------------


def project_image(bin_dir: Path, repo: Path, report: Report = None) -> Path:
    """The OCI archive of `PROJECT_IMAGE`, built from `repo`'s Dockerfile (see `buildkit.py`)."""
    from . import buildkit

    return buildkit.project_image(Path(bin_dir), Path(repo), base_image(report), report)


def main() -> None:
    """`make image`: every image, and the project image also as `.local/images/audio-extract.oci.tar`;
    loaded into the node of a local cluster that is running (e.g. `make dev`'s), so the next pods
    of `PROJECT_IMAGE` run the new build."""
    repo = HERE.parent.parent
    from .cluster import ensure_binaries  # cluster imports this module

    bin_dir = ensure_binaries()

    def report(line: str) -> None:
        print(f"[image] {line}", flush=True)

    for tar in node_images(bin_dir, report):
        report(f"{tar.name}  {tar.stat().st_size / 1e6:.1f} MB")
    started = time.monotonic()
    tar = project_image(bin_dir, repo, report)
    out = repo / ".local" / "images" / "audio-extract.oci.tar"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    try:
        os.link(tar, out)  # a snapshot: the cache replaces its file by rename, never in place
    except OSError:
        shutil.copyfile(tar, out)
    report(f"{PROJECT_IMAGE} ready in {time.monotonic() - started:.1f} s")
    workdir = host.running_cluster()
    if workdir is not None:
        started = time.monotonic()
        import_images(bin_dir, node.NodePaths.of(workdir).containerd_socket, [tar])
        report(f"loaded into the running cluster's node ({workdir}) in {time.monotonic() - started:.1f} s")
    print(f"{out}  {out.stat().st_size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
