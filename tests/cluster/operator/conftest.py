"""Fixtures for operator cluster tests: the CRD installed once, a local media server, and an
operator subprocess per test running under the chart's RBAC (``audio_extract_operator.rbac``).

The helpers live in ``audio_extract_operator.testing`` so the API and webhook cluster tests can
build the same fixtures (this conftest applies to this folder only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from audio_extract_operator.testing import MediaServer, OperatorProcess, install_crd, make_media


@pytest.fixture(scope="session")
def crd(cluster: Any) -> None:
    install_crd(cluster)


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaServer]:
    server = MediaServer(make_media(tmp_path_factory.mktemp("media")), slow_seconds=120).start()
    yield server
    server.stop()


@pytest.fixture
def start_operator(
    cluster: Any, namespace: str, crd: None, request: pytest.FixtureRequest
) -> Iterator[Callable[..., OperatorProcess]]:
    """``start_operator(max_running=2, ...)``: settings as keyword arguments (see Settings)."""
    started: list[OperatorProcess] = []

    def start(**settings: Any) -> OperatorProcess:
        settings.setdefault("retention_interval", 2.0)
        op = OperatorProcess(cluster, namespace, rbac=True, **settings).start()
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for op in started:
            print(f"--- operator log ({op.log_path}) ---\n{op.log_tail(80)}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
