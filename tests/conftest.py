"""Shared fixtures: the local Kubernetes cluster (started once per session: control plane and a
real node, with the project's image built and loaded), a fresh namespace per test, and an admin
API client.

    @pytest.mark.cluster
    def test_something(cluster, namespace, k8s_api): ...

`cluster` is an `audio_extract_localcluster.cluster.LocalCluster`: `.kubeconfig`, `.server`,
`.bin_dir`, `.workdir`, `.volumes_root` (a PVC claim C in namespace N is the directory
`volumes_root/N/C` for pods), `.env` (KUBECONFIG and PATH with kubectl), `.kubectl(*args)`,
`.crictl(*args)`, and `.run(Component)` to add a managed process (e.g. the operator) that is
stopped with the cluster. Logs: `<workdir>/logs/*.log`. The binaries and images are built on first
use (minutes), never skipped. Tests marked `stops_cluster` run last: they stop the session's cluster.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from audio_extract_localcluster import host
from audio_extract_localcluster.cluster import LocalCluster


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--keep-cluster",
        action="store_true",
        help="keep the local cluster's directory (logs, etcd data) after the session",
    )


TIER_TIMEOUTS = {"unit": 60, "component": 300, "cluster": 600, "chart": 600, "e2e": 600}
"""Seconds one test of each tier (``tests/<tier>/``) may take before pytest-timeout fails it; a test's
own ``@pytest.mark.timeout(...)`` wins. Far above each tier's slowest test: a hang, not a slow run."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).parent
    for item in items:
        # a test that uses the cluster is a cluster test even if it forgot the marker
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
        tier = item.path.relative_to(tests_dir).parts[0] if item.path.is_relative_to(tests_dir) else ""
        if tier in TIER_TIMEOUTS and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TIER_TIMEOUTS[tier]))
    # a test that stops the session's cluster comes after every test that uses it
    items.sort(key=lambda item: item.get_closest_marker("stops_cluster") is not None)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    # its own temp dir, not pytest's tmp_path: concurrent pytest runs prune each other's basetemp
    local = LocalCluster(
        keep=request.config.getoption("--keep-cluster"), report=_report(request), project_image=True
    )
    host.recover()  # a run killed before its stop changed the host: compare with it put back
    local.host_before = host.snapshot()  # type: ignore[attr-defined]
    try:
        local.start()
        yield local
    finally:
        local.stop()  # also registered with atexit; PDEATHSIG covers a killed pytest


def _report(request: pytest.FixtureRequest):
    """Status lines (ready/stopped times per component) on the terminal, past output capturing."""
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")

    def report(line: str) -> None:
        if terminal is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            terminal.write_line(f"[local cluster] {line}")

    return report


@pytest.fixture(scope="session")
def k8s_api(cluster: LocalCluster) -> Iterator[kubernetes.client.ApiClient]:
    client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield client
    client.close()


@pytest.fixture
def namespace(request: pytest.FixtureRequest, cluster: LocalCluster, k8s_api) -> Iterator[str]:
    dead = cluster.failed()
    assert not dead, f"local cluster processes exited: {dead} (logs in {cluster.log_dir})"
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{stem}-{uuid.uuid4().hex[:6]}"
    core = kubernetes.client.CoreV1Api(k8s_api)
    core.create_namespace({"metadata": {"name": name}})
    # pods are refused until the namespace's `default` ServiceAccount exists
    deadline = time.monotonic() + 20
    while True:
        try:
            core.read_namespaced_service_account("default", name)
            break
        except kubernetes.client.ApiException as e:
            if e.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield name
    core.delete_namespace(name)
