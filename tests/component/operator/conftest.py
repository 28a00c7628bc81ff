"""``store``: the operator's store on each backend in turn, a temporary directory and the
session's real S3 server (``operator_store``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from operator_store import StoreUnderTest

from audio_extract_common.objectstore import S3Store
from audio_extract_common.storage import VolumeStorage


@pytest.fixture(params=["volume", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreUnderTest]:
    if request.param == "volume":
        root = tmp_path / "store"
        yield StoreUnderTest("volume", VolumeStorage(root), {"store__root": root}, root=root)
        return
    s3 = request.getfixturevalue("s3_server")  # started only when an s3 case runs
    prefix = f"op-{uuid.uuid4().hex[:10]}"
    settings = s3.settings(prefix=prefix)
    async with S3Store(settings) as storage:
        yield StoreUnderTest(
            "s3", storage, {"store__type": "s3", "store__s3": settings}, s3=s3, prefix=prefix
        )
