from __future__ import annotations

from collections.abc import Iterator

import pytest
from client_fakeapi import FakeApi, serve


@pytest.fixture
def fake() -> Iterator[tuple[FakeApi, str]]:
    api = FakeApi()
    httpd, url = serve(api)
    yield api, url
    httpd.shutdown()
    httpd.server_close()
