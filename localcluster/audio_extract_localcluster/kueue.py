"""Kueue in the local cluster (off by default): its CRDs, its controller as a host process like the
control plane, and queues to develop against.

Kueue runs without its admission webhooks (nothing here needs them: the operator creates its Jobs
suspended and labelled, which is all Kueue's `batch/job` integration needs), with leader election
off, under its own client certificate bound to the ClusterRole its module ships. Fair sharing is
on, so ClusterQueues in one cohort share unused quota by their weights.

With internal certificate management off, Kueue reads its metrics serving certificate from a
fixed path, `/etc/kueue/metrics/certs`: that directory is one of the host's fixed directories
(`host.FIXED_DIRS`), removed again when the cluster stops.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .localnet import http_ok
from .processes import Component

API = "kueue.x-k8s.io/v1beta2"
USER = "audio-extract-local:kueue"
ROLE = "audio-extract-local-kueue"
NAMESPACE = "kueue-system"  # its own: Kueue keeps nothing there when it manages no certificate
METRICS_CERT_DIR = Path("/etc/kueue/metrics/certs")
QUEUE_NAME = "audio-extract"  # the development ClusterQueue's and LocalQueue's name
FLAVOR = "default"
# WorkloadPriorityClasses for the three job priorities (what the chart's kueue.priorityClasses creates)
PRIORITY_VALUES = {"low": 100, "normal": 500, "high": 1000}


def config(health_port: int, webhook_port: int, cert_dir: Path) -> dict[str, Any]:
    """Kueue's Configuration: loopback-only listeners, no leader election or webhook certificates
    to manage, only the batch/v1 Job integration, fair sharing on."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": NAMESPACE,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "metrics": {"bindAddress": "0"},  # off: the tests read Workloads, not Kueue's metrics
        "webhook": {"host": "127.0.0.1", "port": webhook_port, "certDir": str(cert_dir)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "manageJobsWithoutQueueName": False,
        "integrations": {"frameworks": ["batch/job"]},
        "fairSharing": {"preemptionStrategies": ["LessThanOrEqualToFinalShare", "LessThanInitialShare"]},
    }


def component(bin_dir: Path, config_file: Path, kubeconfig: Path, health_port: int) -> Component:
    return Component(
        "kueue",
        [
            str(bin_dir / "kueue"),
            f"--config={config_file}",
            f"--kubeconfig={kubeconfig}",
            "--feature-gates=VisibilityOnDemand=false",
        ],
        ready=lambda: http_ok(f"http://127.0.0.1:{health_port}/readyz"),
    )


def crds(bin_dir: Path) -> str:
    """Kueue's CRDs, as its module ships them (copied beside the binary by build-binaries.sh)."""
    return "\n---\n".join(p.read_text() for p in sorted((bin_dir / "kueue-config" / "crds").glob("*.yaml")))


def crd_names(bin_dir: Path) -> list[str]:
    return [
        f"crd/{doc['metadata']['name']}"
        for p in sorted((bin_dir / "kueue-config" / "crds").glob("*.yaml"))
        for doc in yaml.safe_load_all(p.read_text())
        if doc
    ]


def rbac(bin_dir: Path) -> list[dict[str, Any]]:
    """The roles Kueue's module gives its manager (cluster-wide, and for Secrets in its own
    namespace), bound to Kueue's local user."""
    rbac_dir = bin_dir / "kueue-config" / "rbac"
    cluster_role = _first(rbac_dir / "role.yaml", "ClusterRole")
    secrets_role = _first(rbac_dir / "manager_secrets_role.yaml", "Role")
    user = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}]
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {**cluster_role, "metadata": {"name": ROLE}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": ROLE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ROLE},
            "subjects": user,
        },
        {**secrets_role, "metadata": {"name": ROLE, "namespace": NAMESPACE}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": ROLE, "namespace": NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE},
            "subjects": user,
        },
    ]


def _first(path: Path, kind: str) -> dict[str, Any]:
    return next(doc for doc in yaml.safe_load_all(path.read_text()) if doc and doc.get("kind") == kind)


def flavor(name: str = FLAVOR) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "ResourceFlavor", "metadata": {"name": name}}


def cluster_queue(
    name: str,
    cpu: str,
    *,
    memory: str = "64Gi",
    ephemeral_storage: str = "1Ti",
    cohort: str | None = None,
    borrowing_limit: str | None = None,
    preempt: bool = False,
) -> dict[str, Any]:
    """A ClusterQueue of `cpu` CPUs on the default flavor; in `cohort` it lends what it does not
    use and borrows up to `borrowing_limit`; `preempt`: a higher-priority workload may preempt a
    lower one in this queue (and reclaim its lent quota from the cohort). It covers every resource
    a worker requests (Kueue admits nothing that requests a resource its queue does not cover);
    the memory and disk quotas are large, so CPU is what limits."""
    cpu_quota: dict[str, Any] = {"name": "cpu", "nominalQuota": cpu}
    if borrowing_limit is not None:
        cpu_quota["borrowingLimit"] = borrowing_limit
    resources = [
        cpu_quota,
        {"name": "memory", "nominalQuota": memory},
        {"name": "ephemeral-storage", "nominalQuota": ephemeral_storage},
    ]
    spec: dict[str, Any] = {
        "namespaceSelector": {},
        "queueingStrategy": "BestEffortFIFO",
        "resourceGroups": [
            {
                "coveredResources": [r["name"] for r in resources],
                "flavors": [{"name": FLAVOR, "resources": resources}],
            }
        ],
    }
    if cohort is not None:
        spec["cohortName"] = cohort
    if preempt:
        spec["preemption"] = {
            "withinClusterQueue": "LowerPriority",
            "reclaimWithinCohort": "Any",
        }
    return {"apiVersion": API, "kind": "ClusterQueue", "metadata": {"name": name}, "spec": spec}


def local_queue(namespace: str, name: str = QUEUE_NAME, cluster_queue: str = QUEUE_NAME) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "LocalQueue",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterQueue": cluster_queue},
    }


def priority_class(name: str, value: int) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "WorkloadPriorityClass",
        "metadata": {"name": name},
        "value": value,
        "description": f"audio-extract jobs of priority {name.rsplit('-', 1)[-1]}",
    }


def priority_classes(prefix: str = "audio-extract") -> Mapping[str, dict[str, Any]]:
    """One WorkloadPriorityClass per job priority, by priority."""
    return {p: priority_class(f"{prefix}-{p}", v) for p, v in PRIORITY_VALUES.items()}


def dev_queues(namespace: str, cpu: str = "1") -> list[dict[str, Any]]:
    """What `make dev --kueue` starts with: a flavor, a ClusterQueue of `cpu` CPUs (so at most
    that many workers' CPU requests run at once) and its LocalQueue in the release's namespace."""
    return [flavor(), cluster_queue(QUEUE_NAME, cpu, preempt=True), local_queue(namespace)]
