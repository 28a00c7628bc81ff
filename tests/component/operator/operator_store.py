"""The operator's store in component tests, on either backend: a temporary directory
(``VolumeStorage``) or the session's real S3 server (``S3Store`` under a prefix of its own).

    async def test_x(store: StoreUnderTest) -> None:      # the `store` fixture (conftest.py)
        await store.put("job_…/a.mp3")
        state = store.operator_state(FakeApi(), retention__orphan_grace_seconds=3600)
        state.reconciler.clock = store.clock_at(await store.newest(...), 3600)

An object store keeps last-modified times the server sets, in whole seconds, so a test cannot
date an object back as ``os.utime`` dates a file. Tests make ages instead: what must look old is
written first, then ``next_second`` waits until anything written afterwards is dated later, and
the operator's clock (``Reconciler.clock``) is put where the old objects are just past a limit
and the later ones not yet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.session import get_session

from audio_extract_common.storage import Storage
from audio_extract_common.store import PARTIAL_SUFFIX
from audio_extract_operator.kube import Kube
from audio_extract_operator.state import OperatorState
from support.operator_settings import operator_settings
from support.s3_server import S3Server

MARGIN = 0.5
"""Seconds ``clock_at`` adds past a limit; ``next_second`` keeps writes further apart than this."""


@dataclass
class StoreUnderTest:
    kind: str  # "volume" or "s3"
    storage: Storage
    settings: dict[str, Any]
    """What the operator's Settings need for this store."""
    root: Path | None = None
    s3: S3Server | None = None
    prefix: str = ""

    def operator_state(self, api: Kube, **settings: Any) -> OperatorState:
        values = {"progress__port": 0, **self.settings, **settings}
        return OperatorState(operator_settings(**values), api, self.storage)

    async def put(self, *keys: str, data: bytes = b"x") -> None:
        for key in keys:
            await self.storage.put_bytes(key, data)

    async def keys(self) -> set[str]:
        return {info.key async for info in self.storage.list("")}

    async def newest(self, *keys: str) -> datetime:
        """The latest last-modified time of ``keys`` (every one must exist)."""
        times = {info.key: info.last_modified async for info in self.storage.list("") if info.key in keys}
        assert set(times) == set(keys), f"missing: {set(keys) - set(times)}"
        return max(times.values())

    @staticmethod
    def clock_at(newest_old: datetime, limit: float) -> Callable[[], datetime]:
        """A clock at which what was written by ``newest_old`` is past ``limit`` seconds old (by
        ``MARGIN``: a directory's time is a little later than the file written into it), while
        anything written after ``next_second`` is not."""
        at = newest_old + timedelta(seconds=limit + MARGIN)
        return lambda: at

    async def start_partial(self, key: str) -> None:
        """A write begun and never finished: a volume's temporary file, an S3 multipart upload."""
        if self.root is not None:
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            (path.parent / f".{path.name}.k3j9x2{PARTIAL_SUFFIX}").write_bytes(b"part")
            return
        assert self.s3 is not None
        client = _client(self.s3)
        client.create_multipart_upload(Bucket=self.s3.bucket, Key=f"{self.prefix}/{key}")

    def partials(self) -> set[str]:
        """The keys of the writes ``start_partial`` began that are still there."""
        if self.root is not None:
            marker = f".k3j9x2{PARTIAL_SUFFIX}"
            return {
                str(p.relative_to(self.root).parent / p.name[1 : -len(marker)])
                for p in self.root.rglob(f"*{marker}")
            }
        assert self.s3 is not None
        listed = _client(self.s3).list_multipart_uploads(Bucket=self.s3.bucket, Prefix=f"{self.prefix}/")
        return {u["Key"].removeprefix(f"{self.prefix}/") for u in listed.get("Uploads", [])}


async def next_second() -> None:
    """Wait until anything written next is dated more than ``MARGIN`` later than anything written
    so far, on a volume (file times) and on an object store (whole seconds)."""
    await asyncio.sleep(2.05 - time.time() % 1)


def _client(s3: S3Server) -> Any:
    return get_session().create_client(
        "s3",
        endpoint_url=s3.endpoint_url,
        region_name=s3.region,
        aws_access_key_id=s3.access_key_id,
        aws_secret_access_key=s3.secret_access_key,
    )
