"""Fixtures shared by the cluster tests of the operator, the API and the webhooks: the CRD
installed once per session and operator subprocesses per test, running under the chart's RBAC.
Each folder's conftest adjusts the operator's default settings by overriding ``operator_defaults``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from support.cluster_objects import install_crd
from support.operator_process import OperatorProcess


@pytest.fixture(scope="session")
def crd(cluster: Any) -> None:
    install_crd(cluster)


@pytest.fixture
def operator_defaults() -> dict[str, Any]:
    """Operator settings every ``start_operator`` call starts from."""
    return {}


@pytest.fixture
def start_operator(
    cluster: Any,
    namespace: str,
    crd: None,
    operator_defaults: dict[str, Any],
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., OperatorProcess]]:
    """``start_operator(admission__max_running=2, ...)``: operator settings as keyword arguments (see the
    operator's Settings), on top of ``operator_defaults``. Logs are printed when the test failed."""
    started: list[OperatorProcess] = []

    def start(**settings: Any) -> OperatorProcess:
        op = OperatorProcess(cluster, namespace, rbac=True, **{**operator_defaults, **settings}).start()
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for op in started:
            print(f"--- operator log ({op.log_path}) ---\n{op.log_tail(80)}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
