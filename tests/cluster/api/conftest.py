"""Fixtures for the API against the real local API server: the CRD installed once, and the app
in process (ASGI transport) working in the test's namespace."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest
import yaml

from audio_extract_api.app import create_app
from audio_extract_api.settings import Settings
from audio_extract_common.batch_resource import GROUP, PLURAL, VERSION
from audio_extract_localcluster.host import HOST_IP
from support.chart import role_rules

REPO = Path(__file__).resolve().parents[3]
API_KEY = "axk_cluster-test-key"
OTHER_KEY = "axk_cluster-other-key"
ADMIN_KEY = "axk_cluster-admin-key"


@pytest.fixture(scope="session")
def api_role_rules() -> list[dict[str, Any]]:
    """The API's RBAC rules exactly as the Helm chart renders them (the one place they live)."""
    return role_rules("api")


@pytest.fixture
def api_kubeconfig(cluster, namespace, api_role_rules, tmp_path: Path) -> Path:
    """A kubeconfig with a real token of a ServiceAccount bound to only the chart's API Role, so
    the tests see what a deployed API may and may not do."""
    sa = "audio-extract-api"
    objs = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": namespace}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": sa, "namespace": namespace},
            "rules": api_role_rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": sa, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}],
        },
    ]
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs))
    return cluster.service_account_kubeconfig(namespace, sa)


@pytest.fixture
def api_settings(cluster, namespace, crd, api_kubeconfig: Path, tmp_path: Path) -> Settings:
    keys = tmp_path / "api-keys"
    # Three tenants: main, other (each key its own tenant) and ops, an admin.
    keys.write_text(
        f"main {hashlib.sha256(API_KEY.encode()).hexdigest()}\n"
        f"other {hashlib.sha256(OTHER_KEY.encode()).hexdigest()}\n"
        f"ops {hashlib.sha256(ADMIN_KEY.encode()).hexdigest()} admin\n"
    )
    return Settings(
        namespace=namespace,
        kubeconfig=api_kubeconfig,
        api_keys_path=keys,
        store_root=tmp_path / "store",
        allow_cidrs=f"127.0.0.0/8,{HOST_IP}/32",
    )


@pytest.fixture
def make_api(api_settings: Settings) -> Callable[..., Any]:
    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(api_settings.model_copy(update=overrides))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://api.test", timeout=30, headers={"X-API-Key": API_KEY}
            ) as c:
                c.app = app  # type: ignore[attr-defined]
                yield c

    return make


@pytest.fixture
async def api(make_api) -> AsyncIterator[httpx.AsyncClient]:
    async with make_api() as c:
        yield c


@pytest.fixture
def batches(k8s_api, namespace) -> Callable[[], list[dict[str, Any]]]:
    """The ExtractionBatch objects in the test's namespace, straight from the API server."""
    custom = kubernetes.client.CustomObjectsApi(k8s_api)
    return lambda: custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]


@pytest.fixture
def write_status(k8s_api, namespace) -> Callable[[str, dict[str, Any]], None]:
    """Write a batch's status subresource the way the operator does (the API only reads it)."""
    custom = kubernetes.client.CustomObjectsApi(k8s_api)

    def write(name: str, status: dict[str, Any]) -> None:
        body = {"status": status}
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, body)

    return write


def _assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False and body["error"]["code"] == code, body
    assert "Traceback" not in r.text
    return body["error"]


@pytest.fixture
def expect_error_cluster() -> Callable[[httpx.Response, int, str], dict[str, Any]]:
    return _assert_error


@pytest.fixture(scope="session")
def api_media(cluster, tmp_path_factory: pytest.TempPathFactory):
    """The operator tests' generated media plus ``long.mp4`` (90 s of audio under a tiny video, so a
    job lasts long enough for its steps to be seen), served on the node's address (``/slow/...`` waits)."""

    from audio_extract_dev.media import make_media
    from support.media_server import MediaServer

    directory = make_media(tmp_path_factory.mktemp("api-media"))
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=32x24:rate=2:duration=90",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=330:duration=90:sample_rate=44100",
            "-ac",
            "2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-shortest",
            str(directory / "long.mp4"),
        ],
        check=True,
    )
    server = MediaServer(directory, slow_seconds=60).start()
    yield server
    server.stop()


@pytest.fixture
def operator_defaults() -> dict[str, Any]:
    return {"retention__interval": 1.0, "progress__flush_interval": 0.2}
