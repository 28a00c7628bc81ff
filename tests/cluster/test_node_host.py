"""A stopped local cluster leaves nothing of its node on the host: no process, mount, cgroup,
network link or address, iptables chain or ipset, and every sysctl the kubelet, CNI and kube-proxy
changed is back to its value. Runs last: it stops the session's cluster."""

from __future__ import annotations

import pytest

from audio_extract_localcluster import host

pytestmark = [pytest.mark.cluster, pytest.mark.stops_cluster]


def test_stopping_the_cluster_restores_the_host(cluster):
    # something running at the stop, so there is a container, a netns and a veth to clean
    cluster.kubectl("create", "namespace", "last")
    cluster.kubectl("-n", "last", "create", "job", "sleeper", "--image=busybox", "--", "sleep", "300")
    cluster.kubectl("-n", "last", "wait", "--for=jsonpath={.status.ready}=1", "job/sleeper", "--timeout=60s")
    during = host.leftovers(cluster.workdir)
    assert any(line.startswith("mount ") for line in during)  # the check sees a running node
    assert any("chain KUBE-" in line for line in during)
    # and the values the kubelet and the bridge plugin set (a machine may have had them before)
    running = host.snapshot()["sysctls"]
    node_values = (running["kernel.panic"], running["vm.overcommit_memory"], running["net.ipv4.ip_forward"])
    assert node_values == ("10", "1", "1")

    cluster.stop()

    assert host.leftovers(cluster.workdir) == []
    assert host.snapshot() == cluster.host_before
