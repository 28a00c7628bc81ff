"""Fixtures for webhook cluster tests: the CRD, generated media served on the node's address, and an
operator subprocess per test (``support.operator_process``), plus a signing secret."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import Any

import pytest

from audio_extract_dev.media import make_media
from support.media_server import MediaServer


@pytest.fixture(scope="session")
def media(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaServer]:
    # served on the node's address, which exists while the cluster runs
    server = MediaServer(make_media(tmp_path_factory.mktemp("media"))).start()
    yield server
    server.stop()


@pytest.fixture
def secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def operator_defaults(secret: str) -> dict[str, Any]:
    """Webhooks signed with ``secret``, no jitter, a short poll (loopback is allowlisted by
    OperatorProcess)."""
    return {"webhook__secret": secret, "webhook__jitter": 0.0, "webhook__poll_interval": 0.2}
