"""The objects every local cluster gets once its API server is up: access for the API server to the
kubelet (logs, exec), kube-router's read access for NetworkPolicies, and cluster DNS (CoreDNS as
a Deployment in kube-system, from a locally built image).

CoreDNS serves `cluster.local` and the reverse zones, and answers `HOST_NAME` with the node's
address; it has no `forward`, so any other name is refused and no query ever leaves the machine.
"""

from __future__ import annotations

from .host import HOST_IP, HOST_NAME
from .node import CLUSTER_DOMAIN

DNS_IP = "10.0.0.10"
APISERVER_KUBELET_USER = "kube-apiserver-kubelet-client"
KUBE_ROUTER_USER = "system:kube-router"
DNS_LABELS = {"k8s-app": "kube-dns"}

COREFILE = f"""\
.:53 {{
    errors
    health :8080
    ready :8181
    hosts {{
        {HOST_IP} {HOST_NAME}
        fallthrough
    }}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
    reload
    loadbalance
}}
"""


def _cluster_role(name: str, rules: list[dict]) -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": rules,
    }


def _binding(name: str, role: str, subject: dict) -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [subject],
    }


def _user(name: str) -> dict:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}


WATCH = ["get", "list", "watch"]


def access() -> list[dict]:
    """RBAC for the API server's calls to the kubelet and for kube-router."""
    return [
        _binding("local:apiserver-kubelet", "system:kubelet-api-admin", _user(APISERVER_KUBELET_USER)),
        _cluster_role(
            "local:kube-router",
            [
                {
                    "apiGroups": [""],
                    "resources": ["namespaces", "pods", "services", "nodes", "endpoints"],
                    "verbs": WATCH,
                },
                {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": WATCH},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": WATCH},
                {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            ],
        ),
        _binding("local:kube-router", "local:kube-router", _user(KUBE_ROUTER_USER)),
    ]


def coredns(image: str) -> list[dict]:
    ns = "kube-system"
    meta = {"name": "coredns", "namespace": ns}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        _cluster_role(
            "system:coredns",
            [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        ),
        _binding(
            "system:coredns", "system:coredns", {"kind": "ServiceAccount", "name": "coredns", "namespace": ns}
        ),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"Corefile": COREFILE}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {**meta, "labels": DNS_LABELS},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": DNS_LABELS},
                "template": {
                    "metadata": {"labels": DNS_LABELS},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "priorityClassName": "system-cluster-critical",
                        "dnsPolicy": "Default",
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 65532,
                            "runAsGroup": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"},
                            # port 53 without a capability (a namespaced, "safe" sysctl)
                            "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "53"}],
                        },
                        "containers": [
                            {
                                "name": "coredns",
                                "image": image,
                                "imagePullPolicy": "IfNotPresent",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                    {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                                ],
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "32Mi"},
                                    "limits": {"memory": "128Mi"},
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "readinessProbe": {
                                    "httpGet": {"path": "/ready", "port": 8181},
                                    "periodSeconds": 1,
                                },
                                "livenessProbe": {
                                    "httpGet": {"path": "/health", "port": 8080},
                                    "periodSeconds": 10,
                                },
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": ns, "labels": DNS_LABELS},
            "spec": {
                "clusterIP": DNS_IP,
                "selector": DNS_LABELS,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                ],
            },
        },
    ]
