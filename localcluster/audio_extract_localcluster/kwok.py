"""Simulated nodes with KWOK (off by default): nodes that exist only in the API server, and pods on
them whose lifecycle a controller plays from stages instead of running containers. Everything else
is real: the API server, the scheduler that places the pods, the Job controller that counts them,
and whatever watches them. The benchmarks use it to drive more work than one machine can run.

KWOK runs as a host process like the control plane, under its own client certificate bound to the
ClusterRole its module ships, and manages only the nodes annotated ``kwok.x-k8s.io/node=fake``
(`nodes`). It plays the module's stages for nodes (ready, heartbeat with leases) and for pods
starting and being deleted, and the stages it is given for pods ending (`job_pod_done`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .localnet import http_ok
from .processes import Component

USER = "audio-extract-local:kwok"
ROLE = "audio-extract-local-kwok"
MANAGED = ("kwok.x-k8s.io/node", "fake")  # the annotation that hands a node to KWOK
LABEL = ("type", "kwok")  # on every simulated node, to select them
POD_CIDR = "10.128.0.0/16"  # the simulated pods' addresses: never routed, apart from the real node's pods
NODE_IP = "127.0.0.2"  # what a simulated node reports as its address: nothing listens there


def config(health_port: int) -> dict[str, Any]:
    """KWOK's configuration: the annotated nodes only, node leases (so the node lifecycle
    controller sees them alive), its stages from the config file (no Stage CRD), and a server on
    loopback for its health check, without the debugging or profiling handlers."""
    return {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokConfiguration",
        "options": {
            "manageNodesWithAnnotationSelector": "=".join(MANAGED),
            "serverAddress": f"127.0.0.1:{health_port}",
            "enableDebuggingHandlers": False,
            "enableProfilingHandler": False,
            "enableCRDs": [],
            "cidr": POD_CIDR,
            "nodeIP": NODE_IP,
            "nodeLeaseDurationSeconds": 40,
            # every parallelism explicit: a configuration file gets none of the flags' defaults
            "nodeLeaseParallelism": 8,
            "nodePlayStageParallelism": 4,
            "podPlayStageParallelism": 16,
            "podsOnNodeSyncParallelism": 4,
        },
    }


def component(bin_dir: Path, config_file: Path, kubeconfig: Path, health_port: int) -> Component:
    return Component(
        "kwok",
        [str(bin_dir / "kwok"), f"--config={config_file}", f"--kubeconfig={kubeconfig}"],
        ready=lambda: http_ok(f"http://127.0.0.1:{health_port}/healthz"),
    )


def module_stages(bin_dir: Path) -> list[dict[str, Any]]:
    """The stages KWOK's module ships for nodes and for pods starting and being deleted (copied
    beside the binary by build-binaries.sh)."""
    return [
        doc
        for p in sorted((bin_dir / "kwok-config" / "stages").glob("*.yaml"))
        for doc in yaml.safe_load_all(p.read_text())
        if doc
    ]


def rbac(bin_dir: Path) -> list[dict[str, Any]]:
    """The ClusterRole KWOK's module gives its controller, bound to KWOK's local user."""
    role = next(
        doc
        for doc in yaml.safe_load_all((bin_dir / "kwok-config" / "role.yaml").read_text())
        if doc and doc.get("kind") == "ClusterRole"
    )
    return [
        {**role, "metadata": {"name": ROLE}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": ROLE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ROLE},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}],
        },
    ]


def nodes(
    count: int,
    *,
    prefix: str = "kwok-node",
    cpu: str = "32",
    memory: str = "128Gi",
    ephemeral_storage: str = "1Ti",
    pods: str = "110",
) -> list[dict[str, Any]]:
    """``count`` simulated nodes, each with the capacity given (as a real node reports it)."""
    capacity = {"cpu": cpu, "memory": memory, "ephemeral-storage": ephemeral_storage, "pods": pods}
    return [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": f"{prefix}-{i:03d}",
                "annotations": {MANAGED[0]: MANAGED[1]},
                "labels": {
                    LABEL[0]: LABEL[1],
                    "kubernetes.io/hostname": f"{prefix}-{i:03d}",
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
            },
            "status": {"capacity": capacity, "allocatable": capacity},
        }
        for i in range(count)
    ]


def job_pod_done(
    name: str, *, seconds: float, jitter: float = 0.0, exit_code: int = 0, message: str = '""'
) -> dict[str, Any]:
    """A stage that ends a Job's running pod ``seconds`` to ``seconds + jitter`` after it started:
    every container terminates with ``exit_code`` and a termination message, the pod's phase
    follows. ``message`` is a Go template pipeline evaluated on the pod, e.g.
    ``printf `{"id": "%s"}` .metadata.name``."""
    phase = "Succeeded" if exit_code == 0 else "Failed"
    reason = "Completed" if exit_code == 0 else "Error"
    status = f"""\
{{{{ $now := Now }}}}
{{{{ $message := {message} }}}}
containerStatuses:
{{{{ range .spec.containers }}}}
- image: {{{{ .image | Quote }}}}
  name: {{{{ .name | Quote }}}}
  ready: false
  restartCount: 0
  started: false
  state:
    terminated:
      exitCode: {exit_code}
      reason: {reason}
      message: {{{{ $message | Quote }}}}
      finishedAt: {{{{ $now | Quote }}}}
{{{{ end }}}}
phase: {phase}
"""
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {
                "matchExpressions": [
                    {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                    {"key": ".status.phase", "operator": "In", "values": ["Running"]},
                    {"key": ".metadata.ownerReferences.[].kind", "operator": "In", "values": ["Job"]},
                ]
            },
            "delay": {
                "durationMilliseconds": round(seconds * 1000),
                "jitterDurationMilliseconds": round((seconds + jitter) * 1000),
            },
            "next": {"statusTemplate": status},
        },
    }
