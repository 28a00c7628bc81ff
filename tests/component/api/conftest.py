"""Fixtures for the API's component tests: the app in process through httpx's ASGI transport.

No cluster here: the Kubernetes client points at a closed loopback port, which is the one
situation a real API server cannot produce on demand (unreachable → 503). Everything these tests
exercise is decided before the API would talk to Kubernetes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from audio_extract_api.app import create_app
from audio_extract_api.settings import Settings
from support.api_envelope import assert_error
from support.api_keys import ADMIN_KEY, KEY, OTHER_KEY, READ_ONLY_KEY, SIBLING_KEY, sha
from support.kubeconfigs import UNREACHABLE_KUBECONFIG


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-keys"
    # Tenants: main (main, viewer, main-ci), other (its key id is its tenant), ops (admin).
    path.write_text(
        f"# id digest scopes tenant\nmain {sha(KEY)}\n"
        f"viewer {sha(READ_ONLY_KEY)} read tenant=main\nother {sha(OTHER_KEY)}\n"
        f"main-ci {sha(SIBLING_KEY)} tenant=main read,write\nops {sha(ADMIN_KEY)} admin\n"
    )
    return path


@pytest.fixture
def settings(tmp_path: Path, keys_file: Path) -> Settings:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(UNREACHABLE_KUBECONFIG)
    return Settings(
        kubeconfig=kubeconfig,
        api_keys_path=keys_file,
        store_root=tmp_path / "store",
        kube_timeout_seconds=2.0,
    )


AppFactory = Callable[..., Any]


@pytest.fixture
def make_client(settings: Settings) -> AppFactory:
    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(settings.model_copy(update=overrides))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://api.test", headers={"X-API-Key": KEY}
            ) as c:
                c.app = app  # type: ignore[attr-defined]
                yield c

    return make


@pytest.fixture
async def client(make_client: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client() as c:
        yield c


@pytest.fixture
def expect_error() -> Callable[[httpx.Response, int, str], dict[str, Any]]:
    """Assert an error envelope with this status and code; returns its ``error`` object."""
    return assert_error
