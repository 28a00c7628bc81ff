from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from client_fakeapi import FakeApi, serve
from client_realapi import RealApi
from client_realapi import serve as serve_real

from support.s3_server import S3Server


@pytest.fixture
def fake() -> Iterator[tuple[FakeApi, str]]:
    api = FakeApi()
    httpd, url = serve(api)
    yield api, url
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def api_volume(tmp_path: Path) -> Iterator[RealApi]:
    """The real API on a volume store (a temporary directory)."""
    with serve_real(tmp_path / "volume-api") as api:
        yield api


@pytest.fixture
def api_s3(tmp_path: Path, s3_server: S3Server) -> Iterator[RealApi]:
    """The real API on the session's S3 server, under a key prefix of its own."""
    with serve_real(tmp_path / "s3-api", s3_server, f"client-{uuid.uuid4().hex[:10]}") as api:
        yield api
