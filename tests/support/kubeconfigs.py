"""A kubeconfig whose API server never answers: for apps in process whose Kubernetes client is
replaced by a stand-in, so nothing they build by accident reaches a real cluster; and one naming
a loopback stand-in of the API server."""

from __future__ import annotations

UNREACHABLE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: gone, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: not-a-real-token}}]
contexts: [{name: c, context: {cluster: gone, user: u}}]
current-context: c
"""


def kubeconfig_for(server: str) -> str:
    """A kubeconfig naming ``server`` (e.g. a plain-HTTP ``loopback_servers.Server``), token auth."""
    return (
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: k, cluster: {{server: '{server}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
