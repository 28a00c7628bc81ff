"""The project image, built from the top-level Dockerfile by BuildKit (buildkitd + buildctl, built
from source by build-binaries.sh; no container engine is needed).

buildkitd runs only for the build — its OCI worker uses the node's runc and the host network (so
`RUN pip install` and `RUN apt-get` reach the same package registries as this machine) — and is
stopped afterwards; its state stays in the cache, so unchanged layers are reused between builds.
The Dockerfile's base (`PYTHON_IMAGE`) is the Debian image `images.base_image()` writes, passed
as a named build context from an OCI layout; `--opt cmdline` stops the Dockerfile frontend from
fetching the frontend image named by the `# syntax=` line. Nothing is sent to an image registry.

Before any of that, a hash of the build context (the files BuildKit would receive, after
`.dockerignore`), the Dockerfile and the base digest decides whether anything changed at all: if
not, the previous archive is returned at once, without starting buildkitd.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from . import host, images, oci
from .processes import die_with_parent

STOP_TIMEOUT = 30.0


# -- the build context and its hash -----------------------------------------------------------------


def _pattern(pattern: str) -> re.Pattern:
    """A .dockerignore pattern as a regex over slash-separated relative paths (Go filepath.Match
    per segment, `**` for any number of segments)."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            j = pattern.index("]", i + 1)
            out, i = out + pattern[i : j + 1], j + 1  # Go's [a-z] and [^a-z] read the same in a regex
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "(?:/.*)?")  # a matching directory excludes everything below it


def dockerignore(repo: Path) -> list[tuple[bool, re.Pattern]]:
    """(exclude?, regex) per line of `repo/.dockerignore`; the last matching line wins, as in Docker."""
    rules = []
    path = repo / ".dockerignore"
    for line in path.read_text().splitlines() if path.exists() else []:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        cleaned = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
        rules.append((not negate, _pattern(cleaned)))
    return rules


def _excluded(rel: str, rules: list[tuple[bool, re.Pattern]]) -> bool:
    excluded = False
    for exclude, regex in rules:
        if regex.fullmatch(rel):
            excluded = exclude
    return excluded


def context_files(repo: Path) -> Iterator[Path]:
    """The files BuildKit sends as the build context, sorted (excluded directories are not walked
    unless a `!` rule could bring something inside them back)."""
    rules = dockerignore(repo)
    prune = all(exclude for exclude, _ in rules)
    for top, dirs, files in os.walk(repo):
        prefix = "" if top == str(repo) else f"{os.path.relpath(top, repo)}/"

        def rel(name: str, prefix: str = prefix) -> str:
            return prefix + name

        if prune:
            dirs[:] = [d for d in dirs if not _excluded(rel(d), rules)]
        dirs.sort()
        # a symlink to a directory is listed among the directories and not followed; BuildKit
        # sends the link itself, so it is a file of the context here
        links = [d for d in dirs if os.path.islink(os.path.join(top, d))]
        dirs[:] = [d for d in dirs if d not in links]
        for name in sorted([*files, *links]):
            if not _excluded(rel(name), rules):
                yield Path(top, name)


def context_key(repo: Path, base_digest: str, bin_dir: Path) -> str:
    """What the build's result depends on: the context's paths, modes and contents, the
    Dockerfile, the base image's digest, BuildKit's binaries and the image name."""
    h = hashlib.sha256()
    for path in context_files(repo):
        st = path.lstat()
        h.update(f"{path.relative_to(repo)}\0{st.st_mode:o}\0".encode())
        h.update(os.readlink(path).encode() if path.is_symlink() else path.read_bytes())
        h.update(b"\0")
    h.update((repo / "Dockerfile").read_bytes())
    tools = [bin_dir / "buildkitd", bin_dir / "buildctl", bin_dir / "runc"]
    h.update(images.fingerprint(images.PROJECT_IMAGE, base_digest, *tools).encode())
    return h.hexdigest()


# -- buildkitd for the length of a build -----------------------------------------------------------


def _wait_ready(buildctl: list[str], proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"buildkitd exited ({proc.returncode}): {log.read_text()[-2000:]}")
        if subprocess.run([*buildctl, "debug", "workers"], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"buildkitd not ready after {timeout:.0f} s: {log.read_text()[-2000:]}")


@contextmanager
def buildkitd(bin_dir: Path, state: Path, log: Path) -> Iterator[list[str]]:
    """Runs buildkitd with its root under `state`; yields the buildctl command prefix. On exit:
    TERM (KILL after STOP_TIMEOUT), then unmount anything still mounted below `state`."""
    root = state / "root"
    root.mkdir(parents=True, exist_ok=True)
    config = state / "buildkitd.toml"  # ours, never the machine's /etc/buildkit/buildkitd.toml
    config.write_text("[cdi]\n  disabled = true\n")  # no devices in builds: do not read /etc/cdi
    with tempfile.TemporaryDirectory(prefix="buildkit-") as sockdir:  # short: sun_path holds 108 bytes
        addr = f"unix://{sockdir}/buildkitd.sock"
        argv = [
            str(bin_dir / "buildkitd"),
            "--root",
            str(root),
            "--addr",
            addr,
            "--config",
            str(config),
            "--otel-socket-path",
            f"{sockdir}/otel-grpc.sock",  # default: /run/buildkit, left behind
            "--oci-worker=true",
            "--containerd-worker=false",
            "--oci-worker-net",
            "host",
            "--oci-worker-binary",
            str(bin_dir / "runc"),
            "--oci-worker-snapshotter",
            "overlayfs",
            # keep up to 10 GB of layers (default 2 GB: less than one cold build's stages)
            "--oci-worker-gc-keepstorage",
            "10000",
        ]
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        buildctl = [str(bin_dir / "buildctl"), "--addr", addr]
        try:
            _wait_ready(buildctl, proc, log)
            yield buildctl
        finally:
            _stop(proc)
            host.unmount_under([state])


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: buildkitd and the runc it started
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # anything of its group still alive (a runc child that ignored TERM) goes too
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


# -- the build ---------------------------------------------------------------------------------------


def build(bin_dir: Path, repo: Path, base_layout: Path, dest: Path, log: Path) -> None:
    """One `buildctl build` of `repo/Dockerfile` into the OCI archive `dest`."""
    digest = oci.manifest_digest(base_layout)
    with buildkitd(bin_dir, images.cache_dir().parent / "buildkit", log) as buildctl:
        argv = [
            *buildctl,
            "build",
            "--progress",
            "plain",
            "--frontend",
            "dockerfile.v0",
            "--opt",
            "cmdline=ignored",  # do not fetch the `# syntax=` frontend image
            "--local",
            f"context={repo}",
            "--local",
            f"dockerfile={repo}",
            "--opt",
            f"build-arg:PYTHON_IMAGE={images.BASE_IMAGE}",
            "--oci-layout",
            f"base={base_layout}",
            "--opt",
            f"context:{images.BASE_IMAGE}=oci-layout://base@{digest}",
            "--output",
            f"type=oci,dest={dest},name={images.PROJECT_IMAGE}",
        ]
        with log.open("ab") as out:
            proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if proc.returncode:
        tail = log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"buildctl build failed ({proc.returncode}); end of {log}:\n{tail}")


def project_image(bin_dir: Path, repo: Path, base_layout: Path, report=None) -> Path:
    """The OCI archive of `images.PROJECT_IMAGE` (cached: rebuilt only when the context changed)."""
    dest = images.cache_dir() / "audio-extract-dev.oci.tar"
    stamp = dest.with_name(dest.name + ".key")
    key = context_key(repo, oci.manifest_digest(base_layout), bin_dir)
    if dest.exists() and stamp.exists() and stamp.read_text() == key:
        return dest
    with images.locked():
        if dest.exists() and stamp.exists() and stamp.read_text() == key:
            return dest
        logs = images.cache_dir().parent / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / "buildkit.log"
        log.write_bytes(b"")
        started = time.monotonic()
        tmp = dest.with_name(f".{dest.name}.tmp")
        build(bin_dir, repo, base_layout, tmp, log)
        tmp.chmod(0o644)  # buildctl writes it 0666
        os.replace(tmp, dest)
        stamp.write_text(key)
        if report:
            report(
                f"image {images.PROJECT_IMAGE} built in {time.monotonic() - started:.1f} s "
                f"({dest.stat().st_size / 1e6:.0f} MB; log {log})"
            )
    return dest
