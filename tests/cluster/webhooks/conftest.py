"""Fixtures for webhook cluster tests: the CRD, generated media served from 127.0.0.1, and an
operator subprocess per test (``audio_extract_operator.testing``), plus a signing secret."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from audio_extract_operator.testing import MediaServer, OperatorProcess, install_crd, make_media


@pytest.fixture(scope="session")
def crd(cluster: Any) -> None:
    install_crd(cluster)


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaServer]:
    server = MediaServer(make_media(tmp_path_factory.mktemp("media"))).start()
    yield server
    server.stop()


@pytest.fixture
def secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def start_operator(cluster: Any, namespace: str, crd: None, secret: str,
                   request: pytest.FixtureRequest) -> Iterator[Callable[..., OperatorProcess]]:
    """``start_operator(webhook_schedule=[1, 1], ...)``: operator settings as keyword arguments;
    webhooks signed with ``secret``, loopback allowlisted, no jitter unless given."""
    started: list[OperatorProcess] = []

    def start(**settings: Any) -> OperatorProcess:
        settings.setdefault("webhook_secret", secret)
        settings.setdefault("webhook_jitter", 0.0)
        settings.setdefault("webhook_poll_interval", 0.2)
        op = OperatorProcess(cluster, namespace, rbac=True, **settings).start()
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
