"""The chart's NetworkPolicies, enforced by the node's firewall (kube-router): each rule is tried
from a real pod and seen refused, beside a control that the allowed path is open.

Probes run in long-lived pods of the project's image (`kubectl exec`): a *worker* pod carries the
label the operator gives extraction pods (so the workers' policy applies to it), an *other* pod
carries none (no policy selects it). A *target* pod serves HTTP on a private pod address. The
release allows no private CIDR (`allowCIDRs: []`) until a test opens one.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from system import System

from audio_extract_common.ids import JOB_LABEL
from audio_extract_localcluster.cluster import KUBERNETES_SERVICE_IP
from audio_extract_localcluster.host import HOST_IP
from audio_extract_localcluster.images import PROJECT_IMAGE
from support.cluster_objects import restricted_pod
from support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

SYSTEM_VALUES = {"allowCIDRs": []}
KUBE_API = f"{KUBERNETES_SERVICE_IP}:443"
PROBE = """
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
def attempt(target):
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        return "open"
    except OSError as e:
        return type(e).__name__
targets = json.loads(sys.argv[1])
with ThreadPoolExecutor(len(targets)) as pool:
    print(json.dumps(dict(zip(targets, pool.map(attempt, targets)))))
"""


class Pods:
    def __init__(self, system: System) -> None:
        self.system = system

    def start(self, name: str, command: list[str], labels: dict[str, str] | None = None) -> str:
        pod = restricted_pod(name, command, PROJECT_IMAGE)
        pod["metadata"]["labels"] = labels or {}
        pod["spec"]["terminationGracePeriodSeconds"] = 1
        self.system.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Pod", **pod}))
        self.system.kubectl("wait", "--for=condition=Ready", "--timeout=60s", f"pod/{name}")
        return self.ip(name)

    def ip(self, name: str) -> str:
        return self.system.get_json("pod", name)["status"]["podIP"]

    def probe(self, where: str, *targets: str) -> dict[str, str]:
        """`where`: a pod name. Each target's outcome: "open",
        or the error (a refusal answers ConnectionRefusedError, a dropped packet TimeoutError)."""
        out = self.system.kubectl("exec", where, "--", "python", "-c", PROBE, json.dumps(targets))
        return json.loads(out)


@pytest.fixture(scope="module")
def net(system: System) -> dict[str, Any]:
    pods = Pods(system)
    sleeper = ["sleep", "infinity"]
    found = {
        "pods": pods,
        "worker": pods.start("probe-worker", sleeper, {JOB_LABEL: "job_0000000000000000"}),
        "other": pods.start("probe-other", sleeper),
        "target": pods.start("target", ["python", "-m", "http.server", "8000"]) + ":8000",
    }
    for component in ("api", "operator"):
        (pod,) = system.get_json(
            "pods", "-l", f"app.kubernetes.io/component={component}", "--field-selector=status.phase=Running"
        )["items"][:1]
        found[component] = pod["status"]["podIP"]
        found[f"{component}-pod"] = pod["metadata"]["name"]
    return found


def open_from_host(target: str) -> bool:
    address, port = target.rsplit(":", 1)
    try:
        socket.create_connection((address, int(port)), timeout=3).close()
        return True
    except OSError:
        return False


def test_a_worker_reaches_only_the_progress_endpoint(net: dict[str, Any]) -> None:
    api, operator = f"{net['api']}:8000", net["operator"]
    denied = [api, f"{operator}:8080", KUBE_API, f"{HOST_IP}:6443", net["target"]]
    seen = net["pods"].probe("probe-worker", f"{operator}:8081", *denied)
    assert seen.pop(f"{operator}:8081") == "open"
    assert all(outcome != "open" for outcome in seen.values()), seen
    # controls: each denied address listens, and a pod no policy selects reaches it
    others = net["pods"].probe("probe-other", api, KUBE_API, net["target"])
    assert set(others.values()) == {"open"}, others
    assert open_from_host(f"{operator}:8080")  # the kubelet's probes come from the node


def test_the_operator_accepts_progress_only_from_workers(net: dict[str, Any]) -> None:
    progress = f"{net['operator']}:8081"
    assert net["pods"].probe("probe-other", progress)[progress] != "open"
    assert net["pods"].probe("probe-worker", progress)[progress] == "open"


def test_the_api_accepts_traffic_on_its_port_only(system: System, net: dict[str, Any]) -> None:
    # a second listener in the API pod's network namespace (an ephemeral container)
    system.kubectl(
        "debug",
        net["api-pod"],
        "--image",
        PROJECT_IMAGE,
        "--image-pull-policy=Never",
        "--container",
        "listener",
        "--",
        "python",
        "-m",
        "http.server",
        "9000",
    )
    other_port = f"{net['api']}:9000"
    wait_for(lambda: open_from_host(other_port), 60, "the ephemeral listener")  # the node reaches it
    seen = net["pods"].probe("probe-other", f"{net['api']}:8000", other_port)
    assert seen == {f"{net['api']}:8000": "open", other_port: seen[other_port]}
    assert seen[other_port] != "open"


def test_the_api_and_operator_reach_only_dns_and_the_kubernetes_api(
    system: System, net: dict[str, Any]
) -> None:
    for component in ("api", "operator"):
        where = net[f"{component}-pod"]
        seen = net["pods"].probe(where, KUBE_API, net["target"])
        assert seen[KUBE_API] == "open", (component, seen)
        assert seen[net["target"]] != "open", (component, seen)
    # name resolution works (the DNS rule) from the API
    out = system.kubectl(
        "exec",
        net["api-pod"],
        "--",
        "python",
        "-c",
        "import socket; print(socket.gethostbyname('audio-extract-operator'))",
    )
    assert out.strip().count(".") == 3


def test_allow_cidrs_opens_a_private_range_to_the_workers(system: System, net: dict[str, Any]) -> None:
    # last: the upgrade restarts the operator, whose address the other tests use
    target_ip = net["target"].split(":")[0]
    system.upgrade({"allowCIDRs": [f"{target_ip}/32"]})
    try:
        wait_for(
            lambda: net["pods"].probe("probe-worker", net["target"])[net["target"]] == "open",
            30,
            "the firewall to open the allowed CIDR",
        )
        # only that address: the API pods stay out of reach
        assert net["pods"].probe("probe-worker", f"{net['api']}:8000")[f"{net['api']}:8000"] != "open"
    finally:
        system.upgrade({"allowCIDRs": []})
