"""The local cluster is real Kubernetes: Jobs, retries, deadlines, garbage collection, admission and
RBAC behave as on any cluster, with pods run by the local node agent."""

from __future__ import annotations

import time
from collections.abc import Callable

import kubernetes
import pytest
from kubernetes.client import ApiException

from audio_extract_localcluster.cluster import LocalCluster
from audio_extract_operator import testing

pytestmark = pytest.mark.cluster

WAIT = 30.0  # seconds; each step takes well under a few seconds on the local cluster


def wait_for(what: str, probe: Callable[[], object], timeout: float = WAIT) -> object:
    return testing.wait_for(probe, timeout, what, interval=0.1)


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
                    "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}],
                }
            },
        },
    }


def condition(obj: object, kind: str) -> object | None:
    for c in obj.status.conditions or []:
        if c.type == kind and c.status == "True":
            return c
    return None


def test_job_completes_and_termination_message_reaches_pod_status(namespace, k8s_api):
    batch, core = kubernetes.client.BatchV1Api(k8s_api), kubernetes.client.CoreV1Api(k8s_api)
    script = 'echo "$GREETING from $POD" > /dev/termination-log; echo done'
    manifest = job("hello", script)
    manifest["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "GREETING", "value": "hello"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    batch.create_namespaced_job(namespace, manifest)

    done = wait_for(
        "Job Complete", lambda: condition(batch.read_namespaced_job("hello", namespace), "Complete")
    )
    assert done
    (pod,) = core.list_namespaced_pod(namespace, label_selector="job-name=hello").items
    assert pod.status.phase == "Succeeded"
    (cs,) = pod.status.container_statuses
    assert cs.state.terminated.exit_code == 0
    assert cs.state.terminated.reason == "Completed"
    assert cs.state.terminated.message == f"hello from {pod.metadata.name}\n"
    assert cs.image == "busybox"


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


def test_active_deadline_kills_long_pod_and_fails_job(namespace, k8s_api, cluster):
    batch, core = kubernetes.client.BatchV1Api(k8s_api), kubernetes.client.CoreV1Api(k8s_api)
    # Kubernetes expands $(PID_FILE) and turns $$$$ into the shell's $$; /scratch is remapped
    manifest = job(
        "slow",
        "echo $$$$ > /scratch/pid; cp /scratch/pid $(PID_FILE); exec sleep 300",
        activeDeadlineSeconds=2,
    )
    pod_spec = manifest["spec"]["template"]["spec"]
    pod_spec["terminationGracePeriodSeconds"] = 5
    pod_spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    marker = cluster.workdir / f"{namespace}.pid"  # outside the pod, where the test can read it
    pod_spec["containers"][0] |= {
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
        "env": [{"name": "PID_FILE", "value": str(marker)}],
    }
    started = time.monotonic()
    batch.create_namespaced_job(namespace, manifest)

    failed = wait_for("Job Failed", lambda: condition(batch.read_namespaced_job("slow", namespace), "Failed"))
    assert failed.reason == "DeadlineExceeded"
    assert time.monotonic() - started < 15
    pid = int(wait_for("the pod's pid file", lambda: marker.exists() and marker.read_text().strip()))
    # the Job controller deleted the pod; the agent killed the process and confirmed the deletion
    wait_for(
        "pod deleted", lambda: not core.list_namespaced_pod(namespace, label_selector="job-name=slow").items
    )
    wait_for("process gone", lambda: not _alive(pid))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_deleting_owner_garbage_collects_jobs_and_pods(namespace, k8s_api):
    batch, core = kubernetes.client.BatchV1Api(k8s_api), kubernetes.client.CoreV1Api(k8s_api)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}, "data": {"k": "v"}})
    for name in ("owned-a", "owned-b"):
        manifest = job(name, "sleep 300")
        manifest["metadata"]["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
        ]
        batch.create_namespaced_job(namespace, manifest)
    wait_for(
        "both pods running",
        lambda: sum(p.status.phase == "Running" for p in core.list_namespaced_pod(namespace).items) == 2,
    )

    core.delete_namespaced_config_map("owner", namespace)

    wait_for("Jobs collected", lambda: not batch.list_namespaced_job(namespace).items)
    wait_for("pods collected", lambda: not core.list_namespaced_pod(namespace).items)


def test_restricted_namespace_rejects_privileged_pod_admits_compliant(namespace, k8s_api):
    core = kubernetes.client.CoreV1Api(k8s_api)
    core.patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    container = {"name": "main", "image": "busybox", "command": ["sh", "-c", "exit 0"]}
    privileged = {
        "metadata": {"name": "privileged"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [container | {"securityContext": {"privileged": True}}],
        },
    }
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(namespace, privileged)
    assert refused.value.status == 403
    assert "violates PodSecurity" in refused.value.body

    compliant = {
        "metadata": {"name": "compliant"},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                container
                | {"securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}
            ],
        },
    }
    core.create_namespaced_pod(namespace, compliant)
    wait_for(
        "compliant pod ran",
        lambda: core.read_namespaced_pod("compliant", namespace).status.phase == "Succeeded",
    )


def test_service_account_without_rbac_cannot_list_jobs(namespace, cluster, k8s_api):
    core = kubernetes.client.CoreV1Api(k8s_api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    user = f"system:serviceaccount:{namespace}:nobody"

    refused = cluster.kubectl("get", "jobs", "-n", namespace, "--as", user, check=False)
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr.lower()
    assert f'User "{user}" cannot list resource "jobs"' in refused.stderr
    # the same request as the admin succeeds: the refusal is RBAC's, not a broken command
    assert cluster.kubectl("get", "jobs", "-n", namespace).returncode == 0
    assert (
        cluster.kubectl(
            "auth", "can-i", "list", "jobs", "-n", namespace, "--as", user, check=False
        ).stdout.strip()
        == "no"
    )


def test_claims_are_bound_and_pod_sources_map_to_local_files(namespace, cluster, k8s_api):
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
    manifest["spec"]["template"]["spec"] |= {
        "volumes": [
            {"name": "store", "persistentVolumeClaim": {"claimName": "store"}},
            {"name": "cfg", "configMap": {"name": "cfg"}},
        ]
    }
    manifest["spec"]["template"]["spec"]["containers"][0] |= {
        "volumeMounts": [{"name": "store", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/etc/cfg"}],
        "env": [
            {"name": "OUT", "value": "/data/result.txt"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
        ],
    }
    batch.create_namespaced_job(namespace, manifest)

    wait_for("Job Complete", lambda: condition(batch.read_namespaced_job("writer", namespace), "Complete"))
    assert core.read_namespaced_persistent_volume_claim("store", namespace).status.phase == "Bound"
    assert (cluster.volumes_root / namespace / "store" / "result.txt").read_text() == "s3cret hi\n"


def test_pod_the_agent_cannot_run_fails_with_a_reason(namespace, k8s_api):
    core = kubernetes.client.CoreV1Api(k8s_api)
    pod = {
        "metadata": {"name": "image-only"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "nginx"}]},
    }
    core.create_namespaced_pod(namespace, pod)

    failed = wait_for(
        "pod Failed",
        lambda: (p := core.read_namespaced_pod("image-only", namespace)).status.phase == "Failed" and p,
    )
    assert failed.status.reason == "ContainerCannotRun"
    terminated = failed.status.container_statuses[0].state.terminated
    assert "no command" in terminated.message and "nginx" in terminated.message


def test_a_second_cluster_runs_alongside_and_stops_without_leftovers(cluster, tmp_path):
    pid_file = tmp_path / "pod.pid"
    with LocalCluster(bin_dir=cluster.bin_dir) as other:
        other.run(other.node_agent(slots=1))
        assert other.server != cluster.server  # its own free ports
        # $$$$ reaches the shell as $$ (Kubernetes expands $$ to $)
        other.kubectl(
            "create",
            "job",
            "sleeper",
            "--image=busybox",
            "--",
            "sh",
            "-c",
            f"echo $$$$ > {pid_file}; exec sleep 300",
        )
        pod_pid = int(
            wait_for("the pod's process", lambda: pid_file.exists() and pid_file.read_text().strip())
        )
        pids = [p.pid for p in other.supervisor.running] + [pod_pid]
        assert all(_alive(pid) for pid in pids)
        workdir = other.workdir

    wait_for("every process gone", lambda: not [pid for pid in pids if _alive(pid)], timeout=10)
    assert not workdir.exists()  # data removed (keep=False)
    assert "local-node" in cluster.kubectl("get", "nodes").stdout  # the session's cluster is unaffected
