"""Where outputs and uploads live. The filesystem store is a directory (in a cluster, a
ReadWriteMany volume shared by the workers and the API); an S3-compatible store would implement
the same small interface.

Layout under the root: ``<jobId>/<filename>.<ext>`` for outputs, ``uploads/<uploadId>`` for
uploads, and ``upload-owners/<tenant>/<uploadId>`` (what it holds: ``upload_owners``) for the
tenant each upload belongs to: a tenant's uploads are then one directory listing away (its
quota), and the upload's own path, which the workers mount, stays independent of tenants. Writes
go to a temporary file in the same directory (``.<name>.<random>.part``) and are renamed into
place, so a reader never sees a partial file and a pod that runs twice leaves one correct file; a
killed writer leaves its ``.part`` file behind for the operator's retention pass to remove.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol


class Store(Protocol):
    def writer(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]: ...
    def staged(self, key: str) -> contextlib.AbstractContextManager[Path]: ...
    def put_file(self, key: str, source: Path) -> int: ...
    def open(self, key: str) -> BinaryIO: ...
    def size(self, key: str) -> int | None: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def local_path(self, key: str) -> Path | None: ...


UPLOADS = "uploads"
UPLOAD_OWNERS = "upload-owners"
PARTIAL_SUFFIX = ".part"


def output_key(job_id: str, filename: str) -> str:
    return f"{job_id}/{filename}"


def upload_key(upload_id: str) -> str:
    return f"{UPLOADS}/{upload_id}"


def upload_owner_key(tenant: str, upload_id: str) -> str:
    return f"{UPLOAD_OWNERS}/{tenant}/{upload_id}"


def is_partial(name: str) -> bool:
    """A temporary file a writer has not renamed into place (yet, or ever: it was killed)."""
    return name.startswith(".") and name.endswith(PARTIAL_SUFFIX)


def _temporary(path: Path) -> tuple[int, str]:
    """A temporary file next to ``path``, readable by the other processes that share the store
    (the API serves what a worker wrote, a worker reads what the API received; they need not run
    as the same user), as a plain ``open()`` would create it, not mkstemp's owner-only 0600."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX)
    os.fchmod(fd, 0o644)
    return fd, tmp


class FilesystemStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"key escapes the store: {key!r}")
        return path

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        """Write ``key`` atomically: the file appears whole when the block exits without error."""
        with self.staged(key) as tmp, open(tmp, "wb") as f:
            yield f

    @contextlib.contextmanager
    def staged(self, key: str) -> Iterator[Path]:
        """A temporary path next to ``key`` for a producer that writes the file itself (ffmpeg):
        synced and renamed into place when the block exits without error, removed otherwise.
        Saves the worker a copy of every output (an S3 store would stage locally and upload)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _temporary(path)
        os.close(fd)
        try:
            yield Path(tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def put_file(self, key: str, source: Path) -> int:
        """Copy a finished local file in atomically; returns its size."""
        with self.writer(key) as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
        return self._path(key).stat().st_size

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def touch(self, key: str) -> int | None:
        """Mark ``key`` as used now (its mtime, which expiry counts from); its size, or None if absent."""
        path = self._path(key)
        try:
            os.utime(path)
            return path.stat().st_size
        except FileNotFoundError:
            return None

    def free_bytes(self) -> int:
        """Bytes an unprivileged writer may still add (statvfs of the root, or of the nearest
        directory above it that exists: a store not written to yet)."""
        path = self.root
        while not path.exists() and path != path.parent:
            path = path.parent
        st = os.statvfs(path)
        return st.f_bavail * st.f_frsize
