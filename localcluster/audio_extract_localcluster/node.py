"""The node of the local cluster: containerd with runc, the CNI bridge, the kubelet, kube-proxy and
kube-router's NetworkPolicy firewall, as on any kubeadm-style node, all built from source
(`build-binaries.sh`). Pure builders for their configuration files and command lines; the
`LocalCluster` starts them under its supervisor and `host.py` restores what they change.

Everything lives under the cluster's directory (`<workdir>/node`): containerd's root, state and
socket, the CNI configuration and IPAM data, the kubelet's root, certificates and pod logs.
Facts that matter on this kind of machine: cgroup v1 needs
`failCgroupV1: false`; root here cannot lower OOM scores, hence `restrict_oom_score_adj` and
`oomScoreAdj: 0`; pods are never masqueraded and the kubelet hands pods no host resolver.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from .host import BRIDGE, HOST_IP, POD_CIDR

NODE_NAME = "local-node"
CLUSTER_DOMAIN = "cluster.local"
KUBELET_PORT = 10250
KUBE_PROXY_HEALTH = "127.0.0.1:10256"
KUBELET_HEALTH_PORT = 10248


@dataclass(frozen=True)
class NodePaths:
    root: Path  # <workdir>/node: removed at every stop
    # containerd's content and snapshots: kept by a cluster whose directory is kept (`make dev`),
    # so the next start finds its images already unpacked
    containerd_root: Path

    @classmethod
    def of(cls, workdir: Path) -> NodePaths:
        """The node's paths in a cluster directory."""
        return cls(workdir / "node", workdir / "containerd")

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd.toml"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.root / "kubelet.yaml"

    @property
    def resolv_conf(self) -> Path:
        return self.root / "resolv.conf"


def containerd_config(paths: NodePaths, bin_dir: Path, sandbox_image: str) -> str:
    root = paths.root / "containerd"
    cri_runtime = "plugins.'io.containerd.cri.v1.runtime'"
    return f"""version = 3
root = "{paths.containerd_root}"
state = "{root}/state"
disabled_plugins = ["io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{paths.containerd_socket}"

[ttrpc]
  address = "{paths.containerd_socket}.ttrpc"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{sandbox_image}"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "{root}/certs.d"

[{cri_runtime}]
  # root on this machine cannot lower OOM scores; without this every sandbox fails to start
  restrict_oom_score_adj = true
  [{cri_runtime}.cni]
    bin_dirs = ["{bin_dir}"]
    conf_dir = "{paths.cni_conf_dir}"
  [{cri_runtime}.containerd]
    default_runtime_name = "runc"
    [{cri_runtime}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri_runtime}.containerd.runtimes.runc.options]
        BinaryName = "{bin_dir / "runc"}"
        SystemdCgroup = false

[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
"""


def cni_config(paths: NodePaths) -> dict:
    """A bridge with host-local IPAM; no masquerade, so pods never reach beyond this machine."""
    return {
        "cniVersion": "1.0.0",
        "name": "audio-extract",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(paths.root / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(paths: NodePaths, ca_file: Path, serving: tuple[Path, Path], dns_ip: str) -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,  # this machine mounts cgroup v1 controllers
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        "failSwapOn": False,
        "oomScoreAdj": 0,  # root here cannot lower OOM scores
        "address": HOST_IP,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": KUBELET_HEALTH_PORT,
        "tlsCertFile": str(serving[0]),
        "tlsPrivateKeyFile": str(serving[1]),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDNS": [dns_ip],
        "clusterDomain": CLUSTER_DOMAIN,
        # pods with dnsPolicy Default get no nameserver: nothing in the cluster uses the machine's resolver
        "resolvConf": str(paths.resolv_conf),
        "podLogsDir": str(paths.root / "pod-logs"),
        "volumePluginDir": str(paths.root / "volume-plugins"),
        "serializeImagePulls": False,
        "localStorageCapacityIsolation": True,
        "shutdownGracePeriod": "0s",
        # a throw-away node on a shared disk: never evict for disk pressure, never GC images we built
        "evictionHard": {"memory.available": "100Mi"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "syncFrequency": "10s",
    }


def write_configs(
    paths: NodePaths,
    bin_dir: Path,
    sandbox_image: str,
    ca_file: Path,
    kubelet_serving: tuple[Path, Path],
    dns_ip: str,
) -> None:
    paths.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    (paths.root / "containerd").mkdir(parents=True, exist_ok=True)
    paths.containerd_config.write_text(containerd_config(paths, bin_dir, sandbox_image))
    (paths.cni_conf_dir / "10-audio-extract.conflist").write_text(json.dumps(cni_config(paths), indent=2))
    paths.resolv_conf.write_text("")
    paths.kubelet_config.write_text(
        yaml.safe_dump(kubelet_config(paths, ca_file, kubelet_serving, dns_ip), sort_keys=False)
    )


def containerd_argv(paths: NodePaths, bin_dir: Path) -> list[str]:
    return [str(bin_dir / "containerd"), "--config", str(paths.containerd_config), "--log-level", "warn"]


def kubelet_argv(paths: NodePaths, bin_dir: Path, kubeconfig: Path) -> list[str]:
    return [
        str(bin_dir / "kubelet"),
        "--config",
        str(paths.kubelet_config),
        "--kubeconfig",
        str(kubeconfig),
        "--root-dir",
        str(paths.kubelet_root),
        "--cert-dir",
        str(paths.root / "kubelet-pki"),
        "--hostname-override",
        NODE_NAME,
        "--node-ip",
        HOST_IP,
        "--v",
        "1",
    ]


def kube_proxy_argv(bin_dir: Path, kubeconfig: Path) -> list[str]:
    return [
        str(bin_dir / "kube-proxy"),
        "--kubeconfig",
        str(kubeconfig),
        "--proxy-mode",
        "iptables",
        "--cluster-cidr",
        POD_CIDR,
        "--hostname-override",
        NODE_NAME,
        "--conntrack-max-per-core",
        "0",  # leave the machine's conntrack table size alone
        "--nodeport-addresses",
        f"{HOST_IP}/32",  # NodePorts on the node's address only, not on this machine's other interfaces
        "--metrics-bind-address",
        "127.0.0.1:10249",
        "--healthz-bind-address",
        KUBE_PROXY_HEALTH,
    ]


def kube_router_argv(bin_dir: Path, kubeconfig: Path, service_cidr: str) -> list[str]:
    """Only the NetworkPolicy firewall: the bridge CNI routes and kube-proxy serves Services."""
    return [
        str(bin_dir / "kube-router"),
        "--kubeconfig",
        str(kubeconfig),
        "--run-firewall=true",
        "--run-router=false",
        "--run-service-proxy=false",
        "--enable-cni=false",
        "--hostname-override",
        NODE_NAME,
        "--service-cluster-ip-range",
        service_cidr,  # required: its default is 10.96.0.0/12
        "--health-port",
        "0",  # its default listens on every interface
        "--metrics-port",
        "0",
    ]
