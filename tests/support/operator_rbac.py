"""The operator's permissions as the tests grant them: the cluster tests run the operator as a
ServiceAccount bound to these rules, and a chart test checks that the chart's operator Role grants
exactly these.

No ``*``, no Secrets, no Pod creation (the Job controller creates pods); Pods are read (termination
messages) and labelled (the leader's own), a Lease elects the leader. The same rules serve a
namespaced Role (operator watching listed namespaces) and a ClusterRole (cluster-wide mode).
"""

from __future__ import annotations

from typing import Any

RULES: list[dict[str, Any]] = [
    # Watch batches; kopf patches finalizers and its annotations; batches past retention are deleted.
    {
        "apiGroups": ["audioextract.io"],
        "resources": ["extractionbatches"],
        "verbs": ["get", "list", "watch", "patch", "delete"],
    },
    # The operator is the only writer of batch status.
    {"apiGroups": ["audioextract.io"], "resources": ["extractionbatches/status"], "verbs": ["patch"]},
    # Jobs carry a blocking owner reference to their batch (OwnerReferencesPermissionEnforcement).
    {"apiGroups": ["audioextract.io"], "resources": ["extractionbatches/finalizers"], "verbs": ["update"]},
    # One Job per extraction; patched to unsuspend on admission, deleted on cancel.
    {
        "apiGroups": ["batch"],
        "resources": ["jobs"],
        "verbs": ["create", "get", "list", "watch", "patch", "delete"],
    },
    # The worker's result is its pod's termination message; the leader labels its own pod (the
    # progress Service selects it), which `patch` allows on any pod of the namespace: labels only
    # steer Services that select them, and this Role can already run any Job.
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]},
    # Leader election between the replicas.
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
    # Events on the batch per transition (posted, never updated).
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]
# Kueue mode only: a queued job's status says why Kueue keeps its Workload waiting.
KUEUE_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["kueue.x-k8s.io"], "resources": ["workloads"], "verbs": ["list"]},
]
SERVICE_ACCOUNT = "audio-extract-operator"


def role(namespace: str, name: str = SERVICE_ACCOUNT, *, kueue: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": namespace},
        "rules": RULES + (KUEUE_RULES if kueue else []),
    }


def role_binding(
    namespace: str,
    name: str = SERVICE_ACCOUNT,
    service_account: str = SERVICE_ACCOUNT,
    sa_namespace: str | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [
            {"kind": "ServiceAccount", "name": service_account, "namespace": sa_namespace or namespace}
        ],
    }


def service_account(namespace: str, name: str = SERVICE_ACCOUNT) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}


def sa_username(namespace: str, name: str = SERVICE_ACCOUNT) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def sa_groups(namespace: str) -> tuple[str, ...]:
    return ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated")
