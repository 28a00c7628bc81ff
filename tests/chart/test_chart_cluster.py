"""The rendered chart against the real API server of the local cluster: its objects are accepted,
every pod it and the operator produce passes the `restricted` Pod Security level, and the
ServiceAccounts can do exactly what their Roles say (a real token per identity, not admin).
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import kubernetes
import pytest
import yaml
from kubernetes.client import ApiException

from audio_extract_localcluster.localnet import free_port
from support import waiting
from support.chart import CHART, REPO, act_as, find, operator_settings, render, sample_batch, worker_job

pytestmark = [pytest.mark.chart, pytest.mark.cluster]

# Workloads are only validated (server-side dry run) here: these tests check what the chart renders
# and what its RBAC allows, not its Deployments running.
DRY_RUN_KINDS = {"Deployment", "PodDisruptionBudget", "Ingress", "Pod"}
SAMPLE = REPO / "crds" / "samples" / "batch-mp3-aac.yaml"
GROUP, VERSION, PLURAL = "audioextract.io", "v1", "extractionbatches"


@pytest.fixture(scope="module")
def crd(cluster: Any) -> None:
    """The chart's CRD, installed the way Helm would (it is shared by every test namespace)."""
    cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=chart-tests",
        "-f",
        str(CHART / "crds" / "extractionbatches.yaml"),
    )
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/extractionbatches.audioextract.io"
    )


def apply(cluster: Any, objects: list[dict[str, Any]], *extra: str) -> str:
    out = cluster.kubectl(
        "apply",
        "--server-side",
        "--field-manager=chart-tests",
        *extra,
        "-f",
        "-",
        input=yaml.safe_dump_all(objects),
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "Warning" not in out.stderr, out.stderr
    return out.stdout


def test_rendered_chart_is_accepted_by_the_api_server(cluster: Any, namespace: str, crd: None) -> None:
    values = {
        "api": {"ingress": {"enabled": True, "className": "nginx", "tlsSecretName": "tls"}},
        "secrets": {"apiKeys": {"ci": "a" * 64}},
        "worker": {"kueueQueueName": "media"},
        "networkPolicy": {"clusterCIDRs": ["203.0.113.0/24", "2001:db8::/48"]},
        "allowCIDRs": ["10.20.0.0/16"],
    }
    objects = render(values, namespace=namespace)
    created = [o for o in objects if o["kind"] not in DRY_RUN_KINDS]
    validated = [o for o in objects if o["kind"] in DRY_RUN_KINDS]
    assert {o["kind"] for o in validated} == DRY_RUN_KINDS
    apply(cluster, created)
    out = apply(cluster, validated, "--dry-run=server")
    assert out.count("(server dry run)") == len(validated)
    names = set(
        cluster.kubectl(
            "get",
            "-n",
            namespace,
            "-o",
            "name",
            "networkpolicies,roles,rolebindings,serviceaccounts,secrets,services,pvc",
        ).stdout.split()
    )
    for o in created:
        kind = {"PersistentVolumeClaim": "persistentvolumeclaim"}.get(o["kind"], o["kind"].lower())
        group = o["apiVersion"].split("/")[0] if "/" in o["apiVersion"] else ""
        assert f"{kind}{'.' + group if group else ''}/{o['metadata']['name']}" in names
    # the API server kept the NetworkPolicy's exceptions as rendered (no defaulting dropped them)
    policy = json.loads(
        cluster.kubectl("get", "-n", namespace, "networkpolicy", "audio-extract-worker", "-o", "json").stdout
    )
    rendered = find(objects, "NetworkPolicy", "audio-extract-worker")
    assert policy["spec"]["egress"] == rendered["spec"]["egress"]


def restricted_namespace(cluster: Any, namespace: str) -> None:
    cluster.kubectl(
        "label",
        "namespace",
        namespace,
        "--overwrite",
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )


def pod_from(template: dict[str, Any], name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": template.get("metadata", {}).get("labels", {})},
        "spec": copy.deepcopy(template["spec"]),
    }


def worker_pod(
    objects: list[dict[str, Any]],
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """The pod the operator's Job for a sample batch would run, with the chart's settings."""
    job = worker_job(operator_settings(objects, monkeypatch), sample_batch(namespace), 1)
    return pod_from(job["spec"]["template"], job["metadata"]["name"])


def test_every_pod_passes_restricted_pod_security(
    cluster: Any, namespace: str, k8s_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = render(namespace=namespace)
    # the pods refer to these ServiceAccounts; admission refuses pods of unknown ones
    apply(cluster, [o for o in objects if o["kind"] == "ServiceAccount"])
    restricted_namespace(cluster, namespace)
    core = kubernetes.client.CoreV1Api(k8s_api)
    pods = [
        worker_pod(objects, namespace, monkeypatch),
        pod_from(find(objects, "Deployment", "audio-extract-api")["spec"]["template"], "api"),
        pod_from(find(objects, "Deployment", "audio-extract-operator")["spec"]["template"], "operator"),
        find(objects, "Pod", "audio-extract-test-healthz"),
    ]
    for pod in pods:
        created = core.create_namespaced_pod(namespace, pod, dry_run="All")
        assert created.metadata.name == pod["metadata"]["name"]
    assert pods[0]["spec"]["serviceAccountName"] == "audio-extract-worker"

    # the namespace really enforces: the same worker pod with one restricted field undone is refused
    for undo in (
        lambda c: c["securityContext"].update(allowPrivilegeEscalation=True),
        lambda c: c["securityContext"].pop("capabilities"),
        lambda c: c["securityContext"].update(runAsUser=0),
    ):
        bad = copy.deepcopy(pods[0])
        undo(bad["spec"]["containers"][0])
        with pytest.raises(ApiException) as refused:
            core.create_namespaced_pod(namespace, bad, dry_run="All")
        assert refused.value.status == 403
        assert "violates PodSecurity" in refused.value.body


def test_worker_job_runs_its_pod_under_restricted(
    cluster: Any, namespace: str, k8s_api: Any, monkeypatch: pytest.MonkeyPatch, crd: None
) -> None:
    """The Job controller (not a test) creates the worker's pod in the enforcing namespace."""
    objects = render(namespace=namespace)
    apply(cluster, [o for o in objects if o["kind"] == "ServiceAccount"])
    restricted_namespace(cluster, namespace)
    batch = yaml.safe_load(SAMPLE.read_text())
    batch = kubernetes.client.CustomObjectsApi(k8s_api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, batch
    )
    job = worker_job(operator_settings(objects, monkeypatch), batch)
    job["spec"]["suspend"] = False
    # a pod that is admitted and then fails fast is enough: its URLs lead nowhere
    job["spec"]["template"]["spec"]["containers"][0]["command"] = ["python", "-c", "raise SystemExit(3)"]
    job["spec"]["backoffLimit"] = 0
    kubernetes.client.BatchV1Api(k8s_api).create_namespaced_job(namespace, job)
    core = kubernetes.client.CoreV1Api(k8s_api)
    deadline = time.monotonic() + 30
    selector = f"job-name={job['metadata']['name']}"
    while not core.list_namespaced_pod(namespace, label_selector=selector).items:
        events = core.list_namespaced_event(namespace, field_selector="reason=FailedCreate").items
        assert not events, [e.message for e in events]
        assert time.monotonic() < deadline, "the Job controller created no pod"
        time.sleep(0.2)


def test_identities_can_do_exactly_what_their_roles_say(
    cluster: Any, namespace: str, k8s_api: Any, monkeypatch: pytest.MonkeyPatch, crd: None
) -> None:
    operator = act_as(cluster, namespace, "operator")
    api = act_as(cluster, namespace, "api")
    assert operator.username == f"system:serviceaccount:{namespace}:audio-extract-operator"
    objects = render(namespace=namespace)

    # API: creates, reads and patches batches (cancel) — and nothing else
    with api.api_client() as client:
        custom = kubernetes.client.CustomObjectsApi(client)
        batch = custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, yaml.safe_load(SAMPLE.read_text())
        )
        name = batch["metadata"]["name"]
        assert custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": {"cancel": True}}
        )
        forbidden(
            lambda: custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, {"status": {"phase": "Failed"}}
            )
        )
        forbidden(lambda: custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))
        forbidden(lambda: kubernetes.client.BatchV1Api(client).list_namespaced_job(namespace))
        forbidden(lambda: kubernetes.client.CoreV1Api(client).list_namespaced_secret(namespace))

    # operator: Jobs, batch status, events, reading pods — no Secrets, no pod creation
    with operator.api_client() as client:
        custom = kubernetes.client.CustomObjectsApi(client)
        core = kubernetes.client.CoreV1Api(client)
        batch = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": {"observedGeneration": 1}}
        )
        job = worker_job(operator_settings(objects, monkeypatch), batch)
        created = kubernetes.client.BatchV1Api(client).create_namespaced_job(namespace, job, dry_run="All")
        assert created.metadata.name == job["metadata"]["name"]
        core.list_namespaced_pod(namespace)
        core.create_namespaced_event(
            namespace,
            {
                "metadata": {"generateName": "chart-test-"},
                "reason": "Test",
                "message": "m",
                "type": "Normal",
                "involvedObject": {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "ExtractionBatch",
                    "name": name,
                    "namespace": namespace,
                },
            },
        )
        forbidden(lambda: core.list_namespaced_secret(namespace))
        forbidden(lambda: core.read_namespaced_secret("audio-extract-operator", namespace))
        forbidden(
            lambda: core.create_namespaced_pod(
                namespace,
                {"metadata": {"name": "x"}, "spec": {"containers": [{"name": "x", "image": "x"}]}},
                dry_run="All",
            )
        )
        forbidden(
            lambda: custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, yaml.safe_load(SAMPLE.read_text())
            )
        )
        forbidden(lambda: core.list_namespace())
        forbidden(lambda: kubernetes.client.BatchV1Api(client).list_namespaced_job("default"))

    # the worker's ServiceAccount has no rights at all beyond what every identity has
    for verb, resource in (
        ("get", "pods"),
        ("list", "secrets"),
        ("get", "extractionbatches.audioextract.io"),
        ("create", "jobs.batch"),
    ):
        out = cluster.kubectl(
            "auth",
            "can-i",
            verb,
            resource,
            "-n",
            namespace,
            f"--as=system:serviceaccount:{namespace}:audio-extract-worker",
            check=False,
        )
        assert out.stdout.strip() == "no", (verb, resource)


def forbidden(call: Any) -> None:
    with pytest.raises(ApiException) as refused:
        call()
    assert refused.value.status == 403, refused.value


def wait_for(what: str, check: Any, timeout: float = 60, logs: tuple[Any, ...] = ()) -> Any:
    try:
        return waiting.wait_for(check, timeout, what, interval=0.25)
    except AssertionError as e:
        pytest.fail(f"{e}\n" + "\n".join(p.read_text()[-3000:] for p in logs))


def test_api_and_operator_work_under_the_chart_rbac(
    cluster: Any, namespace: str, k8s_api: Any, tmp_path: Any, crd: None
) -> None:
    """The real processes, each with its chart ServiceAccount's token and the environment the chart
    renders (ports and paths moved to this machine): a request becomes a batch, the batch Jobs and
    status, and neither process is refused anything."""
    import hashlib
    import os
    import subprocess
    import sys

    import httpx

    from support.chart import env_of

    # a volume release: its store moves to a directory here (test_chart_store.py renders the S3 one)
    objects = render({"allowCIDRs": ["127.0.0.0/8"], "store": {"type": "volume"}}, namespace=namespace)
    apply(cluster, [o for o in objects if o["kind"] == "ServiceAccount"])
    api_id, operator_id = act_as(cluster, namespace, "api"), act_as(cluster, namespace, "operator")
    key = "axk_chart-test"
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "ci").write_text(hashlib.sha256(key.encode()).hexdigest())
    store = tmp_path / "store"
    store.mkdir()
    api_port, liveness_port = free_port(), free_port()

    def process_env(deployment: str, identity: Any, local: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIO_EXTRACT_")}
        for name, value in env_of(find(objects, "Deployment", deployment)).items():
            if isinstance(value, tuple):  # secretKeyRef / fieldRef, resolved as the kubelet would
                value = namespace if value[0] == "field" else "whsec_" + "A" * 44
            env[name] = value
        env.update(local, KUBECONFIG=str(identity.kubeconfig))
        return env

    api_env = process_env(
        "audio-extract-api",
        api_id,
        {
            "AUDIO_EXTRACT_API_API_KEYS_PATH": str(tmp_path / "keys"),
            "AUDIO_EXTRACT_API_STORE_ROOT": str(store),
            "AUDIO_EXTRACT_API_KUBECONFIG": str(api_id.kubeconfig),
        },
    )
    operator_env = process_env(
        "audio-extract-operator",
        operator_id,
        {
            "AUDIO_EXTRACT_OPERATOR_STORE__ROOT": str(store),
            "AUDIO_EXTRACT_OPERATOR_KOPF__LIVENESS_PORT": str(liveness_port),
            "AUDIO_EXTRACT_OPERATOR_PROGRESS__PORT": str(free_port()),
            "AUDIO_EXTRACT_OPERATOR_KUBECONFIG": str(operator_id.kubeconfig),
        },
    )
    assert operator_env["AUDIO_EXTRACT_OPERATOR_NAMESPACES"] == json.dumps([namespace])

    logs = (tmp_path / "api.log", tmp_path / "operator.log")
    procs = []
    try:
        for cmd, env, log in (
            (
                [sys.executable, "-m", "audio_extract_api", "--host", "127.0.0.1", "--port", str(api_port)],
                api_env,
                logs[0],
            ),
            ([sys.executable, "-m", "audio_extract_operator"], operator_env, logs[1]),
        ):
            with log.open("w") as out:
                procs.append(subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT))

        def answers(url: str) -> bool:
            try:
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("API /readyz", lambda: answers(f"http://127.0.0.1:{api_port}/readyz"), logs=logs)
        wait_for("operator /healthz", lambda: answers(f"http://127.0.0.1:{liveness_port}/healthz"), logs=logs)
        body = {
            "jobs": [
                {"source": {"type": "url", "url": "http://127.0.0.1:9/a.mp4"}, "output": {"format": "mp3"}},
                {"source": {"type": "url", "url": "http://127.0.0.1:9/b.mp4"}, "output": {"format": "ogg"}},
            ]
        }
        reply = httpx.post(
            f"http://127.0.0.1:{api_port}/v1/batch", headers={"X-API-Key": key}, timeout=10, json=body
        )
        assert reply.status_code == 202, reply.text
        batch_id = reply.json()["data"]["batchId"]
        name = batch_id.replace("_", "-")

        batch_api = kubernetes.client.BatchV1Api(k8s_api)
        jobs = wait_for(
            "the operator's Jobs",
            lambda: (
                batch_api.list_namespaced_job(
                    namespace, label_selector=f"audioextract.io/batch={batch_id}"
                ).items
            ),
            logs=logs,
        )
        assert all(j.spec.template.spec.service_account_name == "audio-extract-worker" for j in jobs)
        custom = kubernetes.client.CustomObjectsApi(k8s_api)
        wait_for(
            "the batch status",
            lambda: (
                custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name).get("status")
                or {}
            ).get("jobs"),
            logs=logs,
        )
        status = httpx.get(
            f"http://127.0.0.1:{api_port}/v1/batch/{batch_id}", headers={"X-API-Key": key}, timeout=10
        )
        assert status.status_code == 200, status.text
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
    for log in logs:
        text = log.read_text()
        assert "Forbidden" not in text and " 403" not in text, f"{log.name}:\n{text[-4000:]}"


def test_helm_install_upgrade_uninstall(cluster: Any, namespace: str, k8s_api: Any, crd: None) -> None:
    """A real release (no pods: both Deployments scaled to 0): generated secrets survive an upgrade,
    an explicit one replaces them, and uninstall keeps the store's claim."""
    import base64

    from support.chart import helm

    core, apps = kubernetes.client.CoreV1Api(k8s_api), kubernetes.client.AppsV1Api(k8s_api)

    def release(verb: str, *values: str) -> str:
        args = [verb, "audio-extract", "--namespace", namespace]
        if verb != "uninstall":
            args += [
                str(CHART),
                "--set",
                "api.replicas=0",
                "--set",
                "operator.replicas=0",
                "--set",
                "store.type=volume",
            ]
            args += [a for v in values for a in ("--set", v)]
        out = helm(*args, kubeconfig=cluster.kubeconfig, check=False)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def secret() -> dict[str, str]:
        return core.read_namespaced_secret("audio-extract-operator", namespace).data

    assert "STATUS: deployed" in release("install")
    generated = secret()
    release("upgrade", "worker.maxRunning=8")
    assert secret() == generated
    operator = apps.read_namespaced_deployment("audio-extract-operator", namespace)
    env = {e.name: e.value for e in operator.spec.template.spec.containers[0].env}
    assert env["AUDIO_EXTRACT_OPERATOR_ADMISSION__MAX_RUNNING"] == "8"
    whsec = "whsec_" + "B" * 44
    release("upgrade", f"secrets.webhookSigningSecret={whsec}")
    assert base64.b64decode(secret()["webhook-signing-secret"]).decode() == whsec
    assert secret()["progress-secret"] == generated["progress-secret"]
    release("uninstall")
    left = cluster.kubectl("get", "-n", namespace, "-o", "name", "pvc,deployments,roles,secrets").stdout
    assert left.split() == ["persistentvolumeclaim/audio-extract-store"]
