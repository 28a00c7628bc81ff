"""Fixtures for operator cluster tests: a local media server, and the operator's default
settings for ``start_operator`` (``tests/cluster/conftest.py``; helpers in
``support.operator_process``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from audio_extract_dev.media import make_media
from support.media_server import MediaServer


@pytest.fixture(scope="session")
def media(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaServer]:
    # served on the node's address, which exists while the cluster runs
    server = MediaServer(make_media(tmp_path_factory.mktemp("media")), slow_seconds=120).start()
    yield server
    server.stop()


@pytest.fixture
def operator_defaults() -> dict[str, Any]:
    return {"retention__interval": 2.0}
