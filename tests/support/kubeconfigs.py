"""A kubeconfig whose API server never answers: for apps in process whose Kubernetes client is
replaced by a stand-in, so nothing they build by accident reaches a real cluster."""

UNREACHABLE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: gone, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: not-a-real-token}}]
contexts: [{name: c, context: {cluster: gone, user: u}}]
current-context: c
"""
