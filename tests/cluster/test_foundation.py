"""The local cluster is real Kubernetes on a real node: Jobs, retries, deadlines, garbage collection,
admission and RBAC behave as on any cluster, and the container runtime enforces what a pod asks
for (user, read-only root, capabilities, memory limits), with images built on this machine."""

from __future__ import annotations

import time
from collections.abc import Callable

import kubernetes
import pytest
from kubernetes.client import ApiException

from audio_extract_localcluster import host
from audio_extract_localcluster.cluster import LocalCluster
from support import cluster_objects, waiting

pytestmark = pytest.mark.cluster

WAIT = 60.0  # seconds; each step takes a few seconds on the local node


def wait_for(what: str, probe: Callable[[], object], timeout: float = WAIT) -> object:
    return waiting.wait_for(probe, timeout, what, interval=0.1)


def job(name: str, script: str, **spec: object) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            **spec,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox",
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", script],
                        }
                    ],
                }
            },
        },
    }


def condition(obj: object, kind: str) -> object | None:
    for c in obj.status.conditions or []:
        if c.type == kind and c.status == "True":
            return c
    return None


def finished_pod(core, namespace: str, name: str):
    return wait_for(
        f"pod {name} finished",
        lambda: (
            (p := core.read_namespaced_pod(name, namespace)).status.phase in ("Succeeded", "Failed") and p
        ),
    )


def test_readme_hello_job_pulls_busybox_from_the_node_and_completes(namespace, cluster):
    # the default pull policy of an untagged image is Always: the pull resolves on this machine
    cluster.kubectl(
        "-n", namespace, "create", "job", "hello", "--image=busybox", "--", "sh", "-c", "echo hello"
    )
    cluster.kubectl("-n", namespace, "wait", "--for=condition=Complete", "job/hello", "--timeout=60s")
    assert cluster.kubectl("-n", namespace, "logs", "job/hello").stdout == "hello\n"
    policy = cluster.kubectl(
        "-n",
        namespace,
        "get",
        "job",
        "hello",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].imagePullPolicy}",
    ).stdout
    assert policy == "Always"


def test_an_image_not_built_here_fails_to_pull_without_leaving_the_machine(namespace, k8s_api):
    core = kubernetes.client.CoreV1Api(k8s_api)
    pod = {
        "metadata": {"name": "elsewhere"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "nginx:1.27"}]},
    }
    core.create_namespaced_pod(namespace, pod)

    waiting = wait_for(
        "pull refused",
        lambda: (
            (cs := (core.read_namespaced_pod("elsewhere", namespace).status.container_statuses or [None])[0])
            and cs.state.waiting
            and cs.state.waiting.reason in ("ErrImagePull", "ImagePullBackOff")
            and cs.state.waiting
        ),
    )
    assert "not found" in (waiting.message or "")


def test_job_completes_and_termination_message_reaches_pod_status(namespace, k8s_api):
    batch, core = kubernetes.client.BatchV1Api(k8s_api), kubernetes.client.CoreV1Api(k8s_api)
    script = 'echo "$GREETING from $POD" > /dev/termination-log; echo done'
    manifest = job("hello", script)
    manifest["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "GREETING", "value": "hello"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    batch.create_namespaced_job(namespace, manifest)

    wait_for("Job Complete", lambda: condition(batch.read_namespaced_job("hello", namespace), "Complete"))
    (pod,) = core.list_namespaced_pod(namespace, label_selector="job-name=hello").items
    assert pod.status.phase == "Succeeded"
    assert pod.status.pod_ip and pod.status.pod_ip.startswith("10.244.0.")
    (cs,) = pod.status.container_statuses
    assert cs.state.terminated.exit_code == 0
    assert cs.state.terminated.reason == "Completed"
    assert cs.state.terminated.message == f"hello from {pod.metadata.name}\n"
    assert cs.image == "docker.io/library/busybox:latest"
    assert cs.container_id.startswith("containerd://")


def test_backoff_limit_retries_with_new_pods_then_fails(namespace, k8s_api):
    batch, core = kubernetes.client.BatchV1Api(k8s_api), kubernetes.client.CoreV1Api(k8s_api)
    # the Job controller waits its default 10 s pod-failure back-off before the retry
    batch.create_namespaced_job(namespace, job("flaky", "echo nope >&2; exit 3", backoffLimit=1))

    failed = wait_for(
        "Job Failed", lambda: condition(batch.read_namespaced_job("flaky", namespace), "Failed")
    )
    assert failed.reason == "BackoffLimitExceeded"
    pods = core.list_namespaced_pod(namespace, label_selector="job-name=flaky").items
    assert len(pods) == 2, [p.metadata.name for p in pods]  # the first try and one retry
    for pod in pods:
        assert pod.status.phase == "Failed"
        assert pod.status.container_statuses[0].state.terminated.exit_code == 3
    assert batch.read_namespaced_job("flaky", namespace).status.failed == 2


def test_active_deadline_kills_the_container_and_fails_the_job(namespace, k8s_api, cluster):
    batch, core = kubernetes.client.BatchV1Api(k8s_api), kubernetes.client.CoreV1Api(k8s_api)
    manifest = job("slow", "exec sleep 300", activeDeadlineSeconds=3)
    manifest["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 2
    started = time.monotonic()
    batch.create_namespaced_job(namespace, manifest)
    wait_for(
        "container running",
        lambda: cluster.crictl(
            "ps", "--quiet", "--label", f"io.kubernetes.pod.namespace={namespace}"
        ).stdout.strip(),
    )

    failed = wait_for("Job Failed", lambda: condition(batch.read_namespaced_job("slow", namespace), "Failed"))
    assert failed.reason == "DeadlineExceeded"
    assert time.monotonic() - started < 30
    wait_for(
        "pod deleted", lambda: not core.list_namespaced_pod(namespace, label_selector="job-name=slow").items
    )
    # the kubelet stopped the container (sleep ignores nothing: TERM ends it within the grace)
    wait_for(
        "container gone",
        lambda: (
            not cluster.crictl(
                "ps", "--quiet", "--label", f"io.kubernetes.pod.namespace={namespace}"
            ).stdout.strip()
        ),
    )


def test_deleting_owner_garbage_collects_jobs_and_pods(namespace, k8s_api):
    batch, core = kubernetes.client.BatchV1Api(k8s_api), kubernetes.client.CoreV1Api(k8s_api)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}, "data": {"k": "v"}})
    for name in ("owned-a", "owned-b"):
        manifest = job(name, "exec sleep 300")
        manifest["metadata"]["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
        ]
        manifest["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 1
        batch.create_namespaced_job(namespace, manifest)
    wait_for(
        "both pods running",
        lambda: sum(p.status.phase == "Running" for p in core.list_namespaced_pod(namespace).items) == 2,
    )

    core.delete_namespaced_config_map("owner", namespace)

    wait_for("Jobs collected", lambda: not batch.list_namespaced_job(namespace).items)
    wait_for("pods collected", lambda: not core.list_namespaced_pod(namespace).items)


def restricted_pod(name: str, script: str, **container: object) -> dict:
    return cluster_objects.restricted_pod(name, ["sh", "-c", script], **container)


def test_restricted_namespace_rejects_privileged_pod_admits_compliant(namespace, k8s_api):
    core = kubernetes.client.CoreV1Api(k8s_api)
    core.patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    privileged = {
        "metadata": {"name": "privileged"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["true"],
                    "securityContext": {"privileged": True},
                }
            ],
        },
    }
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(namespace, privileged)
    assert refused.value.status == 403
    assert "violates PodSecurity" in refused.value.body

    core.create_namespaced_pod(namespace, restricted_pod("compliant", "exit 0"))
    assert finished_pod(core, namespace, "compliant").status.phase == "Succeeded"


def test_the_runtime_enforces_user_read_only_root_and_dropped_capabilities(namespace, k8s_api):
    core = kubernetes.client.CoreV1Api(k8s_api)
    script = (
        "id -u; id -g; "
        "if touch /probe 2>/dev/null; then echo root-writable; else echo root-read-only; fi; "
        "grep CapEff /proc/self/status; "
        "if chown 0 /tmp 2>/dev/null; then echo chown-allowed; else echo chown-refused; fi"
    )
    core.create_namespaced_pod(namespace, restricted_pod("confined", script))

    assert finished_pod(core, namespace, "confined").status.phase == "Succeeded"
    lines = core.read_namespaced_pod_log("confined", namespace).split()
    assert lines[:3] == ["65532", "65532", "root-read-only"]
    assert lines[3:5] == ["CapEff:", "0000000000000000"]
    assert lines[5] == "chown-refused"


def test_a_container_over_its_memory_limit_is_oom_killed(namespace, k8s_api):
    core = kubernetes.client.CoreV1Api(k8s_api)
    # a shell variable of 200 MB in a 64 MiB container
    hog = restricted_pod(
        "hog",
        "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
        resources={"limits": {"memory": "64Mi"}, "requests": {"memory": "64Mi"}},
    )
    core.create_namespaced_pod(namespace, hog)

    pod = finished_pod(core, namespace, "hog")
    assert pod.status.phase == "Failed"
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.reason == "OOMKilled"
    assert terminated.exit_code == 137


def test_kubectl_exec_and_logs_reach_the_container(namespace, cluster, k8s_api):
    core = kubernetes.client.CoreV1Api(k8s_api)
    core.create_namespaced_pod(namespace, restricted_pod("shell", "echo started; exec sleep 300"))
    wait_for("pod running", lambda: core.read_namespaced_pod("shell", namespace).status.phase == "Running")
    out = cluster.kubectl("-n", namespace, "exec", "shell", "--", "sh", "-c", "echo $((6 * 7)); id -u").stdout
    assert out.split() == ["42", "65532"]
    wait_for("log", lambda: cluster.kubectl("-n", namespace, "logs", "shell").stdout == "started\n")


def test_pods_resolve_cluster_names_and_the_host_name_and_nothing_else(namespace, k8s_api):
    core = kubernetes.client.CoreV1Api(k8s_api)
    script = (
        "nslookup kubernetes.default.svc.cluster.local; echo ==; "
        f"nslookup {host.HOST_NAME}; echo ==; "
        "nslookup example.com && echo RESOLVED-OUTSIDE; echo =="
    )
    core.create_namespaced_pod(namespace, restricted_pod("dns", script))

    finished_pod(core, namespace, "dns")
    cluster_name, host_name, outside, _ = core.read_namespaced_pod_log("dns", namespace).split("==")
    assert "10.0.0.1" in cluster_name
    assert host.HOST_IP in host_name
    assert "RESOLVED-OUTSIDE" not in outside


def test_pods_reach_the_api_server_and_the_host_address(namespace, cluster, k8s_api):
    core = kubernetes.client.CoreV1Api(k8s_api)
    port = cluster.server.rsplit(":", 1)[1]
    script = (
        "nc -w 3 10.0.0.1 443 </dev/null && echo service-ok; "
        f"nc -w 3 {host.HOST_IP} {port} </dev/null && echo host-ok"
    )
    core.create_namespaced_pod(namespace, restricted_pod("reach", script))

    finished_pod(core, namespace, "reach")
    assert core.read_namespaced_pod_log("reach", namespace).split() == ["service-ok", "host-ok"]


def test_a_network_policy_is_enforced(namespace, k8s_api, cluster):
    core = kubernetes.client.CoreV1Api(k8s_api)
    server = restricted_pod("server", "exec nc -ll -p 8080 -e echo hi")
    server["metadata"]["labels"] = {"app": "server"}
    core.create_namespaced_pod(namespace, server)
    ip = wait_for("server IP", lambda: core.read_namespaced_pod("server", namespace).status.pod_ip)
    wait_for(
        "server running", lambda: core.read_namespaced_pod("server", namespace).status.phase == "Running"
    )

    def probe(name: str, labels: dict[str, str]) -> list[str]:
        pod = restricted_pod(
            name, f"sleep 1; nc -w 3 {ip} 8080 </dev/null 2>/dev/null && echo open || echo closed"
        )
        pod["metadata"]["labels"] = labels
        core.create_namespaced_pod(namespace, pod)
        finished_pod(core, namespace, name)
        return core.read_namespaced_pod_log(name, namespace).split()

    assert probe("before", {}) == ["hi", "open"]  # no policy
    cluster.kubectl(
        "-n",
        namespace,
        "apply",
        "-f",
        "-",
        input="""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-from-friends}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {role: friend}}}]
    ports: [{port: 8080, protocol: TCP}]
""",
    )
    time.sleep(1)  # kube-router applies a policy within a fraction of a second
    assert probe("stranger", {}) == ["closed"]
    assert probe("friend", {"role": "friend"}) == ["hi", "open"]


def test_claims_are_bound_and_pods_write_to_them_as_non_root(namespace, cluster, k8s_api):
    """A claim of the default StorageClass is provisioned and bound, so the scheduler admits the
    pod; the claim is the directory volumes_root/<ns>/<claim>; ConfigMap/Secret values arrive."""
    batch, core = kubernetes.client.BatchV1Api(k8s_api), kubernetes.client.CoreV1Api(k8s_api)
    core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": "store"},
            "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cfg"}, "data": {"greeting": "hi"}})
    core.create_namespaced_secret(namespace, {"metadata": {"name": "sec"}, "stringData": {"token": "s3cret"}})
    manifest = job("writer", 'echo "$TOKEN $(cat /etc/cfg/greeting)" > "$OUT"')
    pod_spec = manifest["spec"]["template"]["spec"]
    pod_spec |= {
        "securityContext": {"runAsUser": 65532, "runAsGroup": 65532, "runAsNonRoot": True},
        "volumes": [
            {"name": "store", "persistentVolumeClaim": {"claimName": "store"}},
            {"name": "cfg", "configMap": {"name": "cfg"}},
        ],
    }
    pod_spec["containers"][0] |= {
        "volumeMounts": [{"name": "store", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/etc/cfg"}],
        "env": [
            {"name": "OUT", "value": "/data/result.txt"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
        ],
    }
    batch.create_namespaced_job(namespace, manifest)

    wait_for("Job Complete", lambda: condition(batch.read_namespaced_job("writer", namespace), "Complete"))
    assert core.read_namespaced_persistent_volume_claim("store", namespace).status.phase == "Bound"
    result = cluster.volumes_root / namespace / "store" / "result.txt"
    assert result.read_text() == "s3cret hi\n"
    assert result.stat().st_uid == 65532


def test_a_second_cluster_is_refused_while_one_runs(cluster, tmp_path):
    with pytest.raises(host.ClusterRunning) as refused:
        LocalCluster(tmp_path / "second", bin_dir=cluster.bin_dir).start()
    assert "already running" in str(refused.value)
    assert str(cluster.workdir) in str(refused.value)
    assert cluster.node_ready()  # the running cluster is unaffected
    assert host.running_cluster() == cluster.workdir  # what `make image` loads a new image into


def test_credentials_are_root_only_and_etcd_demands_a_client_certificate(cluster: LocalCluster) -> None:
    """Keys, kubeconfigs (the admin's is system:masters) and etcd's data are for root's eyes only,
    and etcd, which holds every Secret, answers only TLS clients with a certificate of the CA."""
    import ssl
    import stat
    import urllib.request

    assert stat.S_IMODE(cluster.workdir.stat().st_mode) == 0o700
    assert stat.S_IMODE(cluster.pki.stat().st_mode) == 0o700
    secrets = [cluster.kubeconfig, *cluster.pki.glob("*.key"), *cluster.pki.glob("*.kubeconfig")]
    assert len(secrets) > 8
    loose = {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in secrets if p.stat().st_mode & 0o077}
    assert not loose

    health = f"127.0.0.1:{cluster.ports['etcd']}/health"
    with pytest.raises(OSError):  # plain HTTP: no answer (a TLS listener)
        urllib.request.urlopen(f"http://{health}", timeout=5)
    anonymous = ssl.create_default_context(cafile=str(cluster.ca_file))
    with pytest.raises(OSError):  # TLS without a client certificate: refused in the handshake
        urllib.request.urlopen(f"https://{health}", timeout=5, context=anonymous).read()
    client = ssl.create_default_context(cafile=str(cluster.ca_file))
    client.load_cert_chain(*cluster.etcd_client)
    with urllib.request.urlopen(f"https://{health}", timeout=5, context=client) as reply:
        assert reply.status == 200
