"""Schemathesis against the API's own OpenAPI document, in process (ASGI), with the real API
server behind it: every default check, ``ignored_auth`` and ``negative_data_rejection``
included, at 500 generated examples per operation.

One deliberate setting: ``positive_data_acceptance`` also accepts 400 on the three operations
whose bodies carry rules JSON Schema cannot state — a source or webhook host must resolve to an
allowed address (DNS at submission), an upload id must exist, a bitrate's range depends on the
format, and an empty upload is refused. Those 400s are asserted to be the contract's codes by the
component tests; every other check runs with schemathesis's defaults.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig

from audio_extract_api.app import create_app
from audio_extract_api.settings import Settings

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

KEY = "axk_schemathesis-key"
EXAMPLES = int(__import__("os").environ.get("API_FUZZ_EXAMPLES", "500"))

CONFIG = {
    "operations": [
        {
            "include-path-regex": r"^/v1/(batch|extract|uploads)$",
            "include-method": "POST",
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "429"]
                }
            },
        },
    ],
}


PUBLIC = "93.184.215.14"  # a public address: submission checks it, and nothing connects to it


@pytest.fixture
def api_schema(namespace, crd, api_kubeconfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # Every generated or example host name (videos.example.com, ...) resolves to a public
    # address without a lookup: the test sends no DNS query off this machine, and a name's
    # answer is not the schema's business (the guard's tests cover it).
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        try:
            ipaddress.ip_address(name or "")
        except ValueError:
            if name != "localhost":
                return real(PUBLIC, port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    keys = tmp_path / "keys"
    keys.write_text(f"fuzz {hashlib.sha256(KEY.encode()).hexdigest()}\n")
    # No upload quota: 500 accepted uploads would pass the default count, and a 413 QUOTA_EXCEEDED
    # for valid data is the quota's business (test_api_store_limits.py), not the schema's.
    app = create_app(
        Settings(
            namespace=namespace,
            kubeconfig=api_kubeconfig,
            api_keys_path=keys,
            store_root=tmp_path / "store",
            queue_capacity=100_000,
            upload_quota_count=0,
            upload_quota_bytes=0,
        )
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=SchemathesisConfig.from_dict(CONFIG))


@pytest.fixture(autouse=True)
def _pytest9_node_id(request: pytest.FixtureRequest) -> None:
    # schemathesis' from_fixture renames the test via the private `Node._nodeid`, which pytest 9
    # no longer has; give it one (only affects the reported name).
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")


CONFORMANCE = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)


@schema.parametrize()
@CONFORMANCE
def test_openapi_conformance(case):
    case.call_and_validate(headers={"X-API-Key": KEY})


def test_every_operation_got_its_examples(api_schema: Any) -> None:
    """The conformance test's settings give each operation at least EXAMPLES cases (the two
    probes take no input at all, so hypothesis exhausts them in a handful). The cases are drawn
    here as the conformance test draws them, in each generation mode, and none is sent, so this
    holds whichever tests run and in whatever order."""
    calls: Counter[str] = Counter()

    def counting(label: str) -> Any:
        def draw(case: Any) -> None:
            calls[label] += 1

        return draw

    for result in api_schema.get_all_operations():
        operation = result.ok()
        modes = api_schema.config.generation_for(operation=operation, phase="fuzzing").modes

        strategy = st.one_of([operation.as_strategy(generation_mode=mode) for mode in modes])
        given(case=strategy)(CONFORMANCE(counting(operation.label)))()
    print(dict(calls))
    assert len(calls) == 10, calls
    probes = {"GET /healthz", "GET /readyz"}
    assert all(n >= EXAMPLES for op, n in calls.items() if op not in probes), calls
    assert all(calls[op] >= 1 for op in probes), calls
