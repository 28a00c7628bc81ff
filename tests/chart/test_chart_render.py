"""The chart as the real helm binary renders it: lint (helm's and kube-score's production checks),
the default render's guarantees (least privilege, probes, resources, restricted security contexts,
egress fences), non-default values, the values schema, the wiring between objects and the processes'
settings, and a golden snapshot.

Golden update: ``UPDATE_GOLDEN=1 pytest tests/chart/test_chart_render.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.chart import (
    CHART,
    NAMESPACE,
    REPO,
    assert_settings_exist,
    env_of,
    find,
    helm,
    operator_settings,
    render,
    sample_batch,
    template,
    worker_job,
)

pytestmark = pytest.mark.chart

GOLDEN = Path(__file__).parent / "golden" / "default.yaml"
OPERATOR_PREFIX = "AUDIO_EXTRACT_OPERATOR_"
API_PREFIX = "AUDIO_EXTRACT_API_"
PRIVATE_V4 = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "127.0.0.0/8",
]
PRIVATE_V6 = ["fc00::/7", "fe80::/10"]
DIGEST = "a" * 64
Objects = list[dict[str, Any]]


@pytest.fixture(scope="module")
def default() -> Objects:
    return render()


UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def quantity(text: str) -> int:
    """Bytes of a Kubernetes quantity such as ``1280Mi``."""
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", text).groups()
    return int(float(number) * UNITS[unit])


def pod_specs(objects: Objects) -> dict[str, dict[str, Any]]:
    """Every pod spec the chart renders, by owner name."""
    specs = {}
    for o in objects:
        if o["kind"] == "Deployment":
            specs[o["metadata"]["name"]] = o["spec"]["template"]["spec"]
        elif o["kind"] == "Pod":
            specs[o["metadata"]["name"]] = o["spec"]
    return specs


# --- lint and schema ------------------------------------------------------------------------------


def test_lint_passes_with_the_required_value_and_ci_values() -> None:
    for extra in (["--set", "store.s3.bucket=media"], ["--values", str(CHART / "ci" / "ci-values.yaml")]):
        out = helm("lint", "--strict", str(CHART), *extra, check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "0 chart(s) failed" in out.stdout
    # the default store is S3, and which bucket is the one thing an install must say
    out = helm("lint", "--strict", str(CHART), check=False)
    assert "store.s3.bucket is required with store.type s3" in out.stdout + out.stderr


KUBE_SCORE = "github.com/zegl/kube-score/cmd/kube-score@v1.20.0"
KUBE_SCORE_EXCEPTIONS = ["container-image-pull-policy"]
"""kube-score checks skipped for every object, each explained in values.yaml; the exceptions of
single objects are their `kube-score/ignore` annotations."""


def kube_score_binary() -> Path:
    """kube-score, built once through the Go module proxy into the project's tool cache, like helm.
    (kube-linter, the other widely used production linter, is not served by that proxy.)"""
    cache = Path(os.environ.get("AUDIO_EXTRACT_CACHE", Path.home() / ".cache" / "audio-extract"))
    version = KUBE_SCORE.rsplit("@", 1)[1]
    binary = cache / "bin" / f"kube-score-{version}" / "kube-score"
    if not binary.exists():
        if shutil.which("go") is None:
            pytest.skip("kube-score is built with Go, which is not installed")
        subprocess.run(
            ["go", "install", KUBE_SCORE],
            env={**os.environ, "GOBIN": str(binary.parent)},
            check=True,
            capture_output=True,
        )
    return binary


@pytest.mark.slow
@pytest.mark.parametrize("values_file", [None, CHART / "ci" / "ci-values.yaml"], ids=["default", "ci"])
def test_kube_score_production_checks_pass(
    values_file: Path | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kube-score's default checks on the chart and on a worker Job the operator builds from it."""

    values = yaml.safe_load(values_file.read_text()) if values_file else {}
    rendered = template(values).stdout
    objects = [o for o in yaml.safe_load_all(rendered) if o]
    job = worker_job(operator_settings(objects, monkeypatch), sample_batch())
    ignores = [arg for check in KUBE_SCORE_EXCEPTIONS for arg in ("--ignore-test", check)]
    out = subprocess.run(
        [str(kube_score_binary()), "score", "-", "--output-format", "ci", "--exit-one-on-warning", *ignores],
        input=rendered + "---\n" + yaml.safe_dump(job),
        capture_output=True,
        text=True,
    )
    problems = [line for line in out.stdout.splitlines() if not line.startswith(("[OK]", "[SKIPPED]"))]
    assert not problems, "\n".join(problems)
    assert out.returncode == 0, out.stderr


def test_kube_score_exceptions_are_explained_in_values(default: Objects) -> None:
    annotated = {
        check
        for o in default
        for check in o["metadata"].get("annotations", {}).get("kube-score/ignore", "").split(",")
        if check
    }
    # the *-targets-pod exceptions are explained beside their annotations: their pods only exist
    # (or carry the label) at run time
    at_run_time = {"networkpolicy-targets-pod", "service-targets-pod"}
    assert annotated == {"deployment-has-host-podantiaffinity", *at_run_time}
    documented = (CHART / "values.yaml").read_text()
    for check in annotated - at_run_time | set(KUBE_SCORE_EXCEPTIONS):
        assert f"`{check}`" in documented, check


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"operator": {"replicas": 6}}, "maximum"),
        ({"secrets": {"apiKeys": {"ci": "not-a-digest"}}}, "apiKeys"),
        ({"secrets": {"apiKeys": {"ci": f"{DIGEST} tenant=-not-a-label"}}}, "apiKeys"),
        ({"api": {"uploadQuotaCount": -1}}, "uploadQuotaCount"),
        ({"allowCIDRs": ["10.0.0.0"]}, "allowCIDRs"),
        ({"api": {"resources": {"limits": None}}}, "limits"),  # null deletes a default
        ({"worker": {"maxRunning": 0}}, "maxRunning"),
        ({"worker": {"resources": {"limits": {"ephemeral-storage": None}}}}, "ephemeral-storage"),
        ({"api": {"service": {"type": "NodePort", "nodePort": 8080}}}, "nodePort"),
        ({"networkPolicy": {"kubeAPIServer": {"ports": []}}}, "ports"),
        ({"oprator": {}}, "oprator"),
    ],
)
def test_schema_refuses_bad_values(values: dict[str, Any], error: str) -> None:
    out = template(values, check=False)
    assert out.returncode != 0
    assert error in out.stderr


def test_every_value_is_documented() -> None:
    """Each value has a `# --` comment right above it naming it (helm-docs style); a group of values
    needs none, and the contents of a documented map or list (e.g. `resources`) are its default."""
    lines = [line for line in (CHART / "values.yaml").read_text().splitlines() if line.strip()]
    keys = [
        (i, len(m.group(1)), m.group(2))
        for i, line in enumerate(lines)
        if (m := re.match(r"^( *)([A-Za-z][A-Za-z0-9]*):", line))
    ]
    stack: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    undocumented = []
    for n, (i, indent, key) in enumerate(keys):
        while stack and stack[-1][0] >= indent:
            stack.pop()
        comment = lines[i - 1].strip()
        documented = comment.startswith("# -- ") and key in comment
        is_group = n + 1 < len(keys) and keys[n + 1][1] > indent and not lines[i].split(":", 1)[1].strip()
        if not (documented or any(d for _, d in stack) or is_group):
            undocumented.append(key)
        stack.append((indent, documented))
    assert not undocumented


# --- the default render -----------------------------------------------------------------------------


def test_default_render_has_the_expected_objects(default: Objects) -> None:
    kinds = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in default)
    assert kinds == sorted(
        [
            "Deployment/audio-extract-api",
            "Deployment/audio-extract-operator",
            "Service/audio-extract-api",
            "Service/audio-extract-operator",
            "PodDisruptionBudget/audio-extract-api",
            "PodDisruptionBudget/audio-extract-operator",
            "ServiceAccount/audio-extract-api",
            "ServiceAccount/audio-extract-operator",
            "ServiceAccount/audio-extract-worker",
            "Role/audio-extract-api",
            "Role/audio-extract-operator",
            "RoleBinding/audio-extract-api",
            "RoleBinding/audio-extract-operator",
            "Secret/audio-extract-operator",
            "Secret/audio-extract-api-keys",
            "Secret/audio-extract-api",
            "NetworkPolicy/audio-extract-api",
            "NetworkPolicy/audio-extract-operator",
            "NetworkPolicy/audio-extract-worker",
            "NetworkPolicy/audio-extract-test",
            "Pod/audio-extract-test-healthz",
        ]
    )
    assert all(o["metadata"]["namespace"] == NAMESPACE for o in default)
    for o in default:
        labels = o["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/instance"] == "audio-extract"
        assert labels["helm.sh/chart"] == "audio-extract-0.1.0"


def test_no_wildcards_no_secrets_no_pod_creation(default: Objects) -> None:
    assert not [o for o in default if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    roles = {o["metadata"]["name"]: o["rules"] for o in default if o["kind"] == "Role"}
    assert set(roles) == {"audio-extract-api", "audio-extract-operator"}
    for rules in roles.values():
        for rule in rules:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field]
            assert "secrets" not in rule["resources"]
            assert "resourceNames" not in rule
            if "pods" in rule["resources"]:  # read, and the leader labels its own: never created
                assert set(rule["verbs"]) <= {"get", "list", "watch", "patch"}
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


def test_operator_rules_are_what_it_uses(default: Objects) -> None:
    """The chart's operator Role grants exactly what the operator needs: the cluster tests run
    the operator under this rendered Role (``support.chart.act_as``), so a missing right fails
    them and an extra one fails here."""

    def grants(rules: Objects) -> set[tuple[str, str, str]]:
        return {
            (g, r, v)
            for rule in rules
            for g in rule["apiGroups"]
            for r in rule["resources"]
            for v in rule["verbs"]
        }

    rules = find(default, "Role", "audio-extract-operator")["rules"]
    assert grants(rules) == {
        *{("audioextract.io", "extractionbatches", v) for v in ("get", "list", "watch", "patch", "delete")},
        ("audioextract.io", "extractionbatches/status", "patch"),
        ("audioextract.io", "extractionbatches/finalizers", "update"),
        *{("batch", "jobs", v) for v in ("create", "get", "list", "watch", "patch", "delete")},
        *{("", "pods", v) for v in ("get", "list", "watch", "patch")},
        *{("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")},
        ("", "events", "create"),
    }
    assert find(default, "ServiceAccount", "audio-extract-operator")


def test_api_rules_are_what_it_uses(default: Objects) -> None:
    rules = find(default, "Role", "audio-extract-api")["rules"]
    assert rules == [
        {
            "apiGroups": ["audioextract.io"],
            "resources": ["extractionbatches"],
            "verbs": ["create", "get", "list", "watch", "patch"],
        }
    ]


def test_worker_identity_has_no_token_and_no_binding(default: Objects) -> None:
    sa = find(default, "ServiceAccount", "audio-extract-worker")
    assert sa["automountServiceAccountToken"] is False
    bindings = [o for o in default if o["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    subjects = [s for o in bindings for s in o["subjects"]]
    assert {s["name"] for s in subjects} == {"audio-extract-api", "audio-extract-operator"}
    # bindings point at their own component's Role and an existing ServiceAccount
    for binding in (o for o in default if o["kind"] == "RoleBinding"):
        find(default, "Role", binding["roleRef"]["name"])
        for s in binding["subjects"]:
            assert s["namespace"] == NAMESPACE
            find(default, "ServiceAccount", s["name"])


def test_every_container_has_resources_and_a_restricted_security_context(default: Objects) -> None:
    specs = pod_specs(default)
    assert set(specs) == {"audio-extract-api", "audio-extract-operator", "audio-extract-test-healthz"}
    for name, spec in specs.items():
        # Services named audio-extract-api/-operator would inject AUDIO_EXTRACT_API_PORT etc.
        assert spec["enableServiceLinks"] is False, name
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0, name
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", name
        for volume in spec.get("volumes", []):
            allowed = {"emptyDir", "persistentVolumeClaim", "secret", "configMap"}
            assert set(volume) - {"name"} <= allowed, name
        for c in spec["containers"]:
            for section in ("requests", "limits"):
                assert set(c["resources"][section]) >= {"cpu", "memory", "ephemeral-storage"}, (name, section)
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert not sc["capabilities"].get("add")
            assert c["image"] == "ghcr.io/audio-extract/audio-extract:0.1.0"


def test_disk_limits_hold_the_emptydirs_and_room_for_logs(
    default: Objects, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kubelet evicts a pod whose local disk use (emptyDirs, logs, writable layers) passes the sum
    of its containers' ephemeral-storage limits: a full scratch or /tmp must not get there first."""

    job = worker_job(operator_settings(default, monkeypatch), sample_batch())
    specs = {**pod_specs(default), "worker": job["spec"]["template"]["spec"]}
    for name, spec in specs.items():
        containers = [c["resources"] for c in spec["containers"]]
        limit = sum(quantity(r["limits"]["ephemeral-storage"]) for r in containers)
        request = sum(quantity(r["requests"]["ephemeral-storage"]) for r in containers)
        emptydirs = sum(
            quantity(v["emptyDir"]["sizeLimit"]) for v in spec.get("volumes", []) if "emptyDir" in v
        )
        assert limit >= emptydirs + quantity("64Mi"), name
        assert 0 < request <= limit, name
    worker = job["spec"]["template"]["spec"]
    assert {"name": "scratch", "emptyDir": {"sizeLimit": "6Gi"}} in worker["volumes"]
    assert worker["containers"][0]["resources"]["limits"]["ephemeral-storage"] == "6400Mi"


def test_api_deployment_probes_service_and_budget(default: Objects) -> None:
    api = find(default, "Deployment", "audio-extract-api")
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["command"] == [
        "python",
        "-m",
        "audio_extract_api",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]
    assert api["spec"]["replicas"] == 2
    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    service = find(default, "Service", "audio-extract-api")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    budget = find(default, "PodDisruptionBudget", "audio-extract-api")
    assert budget["spec"]["selector"]["matchLabels"] == api["spec"]["selector"]["matchLabels"]
    assert budget["spec"]["maxUnavailable"] == 1
    # the API's identity is its own ServiceAccount, which the API Role is bound to
    assert api["spec"]["template"]["spec"]["serviceAccountName"] == "audio-extract-api"
    assert "nodePort" not in service["spec"]["ports"][0]


def test_api_pods_drain_before_they_stop(default: Objects) -> None:
    # endpoints and kube-proxy rules are updated asynchronously: a pod that stopped listening
    # at once would refuse connections still routed to it
    container = find(default, "Deployment", "audio-extract-api")["spec"]["template"]["spec"]["containers"][0]
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    off = find(render({"api": {"drainSeconds": 0}}), "Deployment", "audio-extract-api")
    assert "lifecycle" not in off["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize(
    ("service", "node_port"),
    [
        ({"type": "NodePort", "nodePort": 30080}, 30080),
        ({"type": "LoadBalancer", "nodePort": 31000}, 31000),
        ({"type": "NodePort"}, None),  # Kubernetes picks one
        ({"type": "ClusterIP", "nodePort": 30080}, None),  # a ClusterIP Service has no node port
    ],
)
def test_api_service_node_port(service: dict[str, Any], node_port: int | None) -> None:
    objects = render({"api": {"service": service}})
    spec = find(objects, "Service", "audio-extract-api")["spec"]
    assert spec["type"] == service["type"]
    assert spec["ports"][0].get("nodePort") == node_port


def test_api_replicas_spread_over_nodes(default: Objects) -> None:
    api = find(default, "Deployment", "audio-extract-api")
    [spread] = api["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread == {
        "topologyKey": "kubernetes.io/hostname",
        "maxSkew": 1,
        "whenUnsatisfiable": "ScheduleAnyway",  # one node still runs every replica
        "labelSelector": {"matchLabels": api["spec"]["selector"]["matchLabels"]},
    }
    zones = [
        {
            "topologyKey": "topology.kubernetes.io/zone",
            "maxSkew": 1,
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "api"}},
        }
    ]
    custom = find(render({"api": {"topologySpreadConstraints": zones}}), "Deployment", "audio-extract-api")
    assert custom["spec"]["template"]["spec"]["topologySpreadConstraints"] == zones


def test_operator_replicas_elect_a_leader_and_only_it_gets_progress(default: Objects) -> None:
    from audio_extract_operator.__main__ import ROLE_LABEL
    from audio_extract_operator.readiness import LIVENESS_TIMEOUT

    op = find(default, "Deployment", "audio-extract-operator")
    assert op["spec"]["replicas"] == 2
    # new pods stand by until the old leader hands the Lease over: a rollout may overlap them
    assert op["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert find(default, "PodDisruptionBudget", "audio-extract-operator")["spec"]["maxUnavailable"] == 1
    spec = op["spec"]["template"]["spec"]
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    lease = env["AUDIO_EXTRACT_OPERATOR_LEADER__LEASE"]["value"]
    assert lease == "audio-extract/audio-extract-operator"
    assert env["AUDIO_EXTRACT_OPERATOR_LEADER__POD_NAME"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.name"}
    }
    assert spec["serviceAccountName"] == "audio-extract-operator"
    container = spec["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "liveness"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"liveness": 8080, "progress": 8081}
    # served by the operator's progress endpoint (audio_extract_operator.readiness), not kopf's
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "progress"}
    assert container["readinessProbe"]["timeoutSeconds"] > LIVENESS_TIMEOUT
    assert container["command"] == ["python", "-m", "audio_extract_operator"]
    service = find(default, "Service", "audio-extract-operator")
    selector = dict(service["spec"]["selector"])
    assert selector.pop(ROLE_LABEL) == "leader"  # set at run time on the leader's pod only
    assert selector.items() <= op["spec"]["template"]["metadata"]["labels"].items()
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        (8081, "progress"),
        (9090, "progress"),
    ]


def test_settings_env_names_exist_in_the_processes_settings(default: Objects) -> None:
    """pydantic-settings ignores unknown variables: a misspelt name would silently do nothing."""
    assert_settings_exist(default)


def test_secret_references_resolve(default: Objects) -> None:
    op_env = env_of(find(default, "Deployment", "audio-extract-operator"))
    secret = find(default, "Secret", "audio-extract-operator")
    refs = [v for v in op_env.values() if isinstance(v, tuple) and v[0] == "secret"]
    assert {(name, key) for _, name, key in refs} == {
        ("audio-extract-operator", "progress-secret"),
        ("audio-extract-operator", "webhook-signing-secret"),
    }
    for _, _, key in refs:
        assert secret["data"][key]
    import base64

    assert base64.b64decode(secret["data"]["webhook-signing-secret"]).startswith(b"whsec_")
    api = find(default, "Deployment", "audio-extract-api")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in api["volumes"]}
    assert volumes["api-keys"]["secret"]["secretName"] == "audio-extract-api-keys"
    mounts = {m["name"]: m["mountPath"] for m in api["containers"][0]["volumeMounts"]}
    api_env = env_of(find(default, "Deployment", "audio-extract-api"))
    assert api_env[API_PREFIX + "API_KEYS_PATH"] == mounts["api-keys"]
    # the API never sees the operator's secrets, only its own
    assert [v for v in api_env.values() if isinstance(v, tuple) and v[0] == "secret"] == [
        ("secret", "audio-extract-api", "idempotency-secret")
    ]
    idempotency = find(default, "Secret", "audio-extract-api")["data"]["idempotency-secret"]
    assert len(base64.b64decode(idempotency)) >= 32


def test_worker_egress_is_dns_progress_and_public_addresses_only(default: Objects) -> None:
    policy = find(default, "NetworkPolicy", "audio-extract-worker")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert not policy.get("ingress")
    egress = policy["egress"]
    assert all(rule.get("to") for rule in egress)  # a rule without `to` would allow every destination
    dns, progress, store, public = egress
    assert store == {"to": public["to"], "ports": [{"protocol": "TCP", "port": 443}]}  # the S3 store
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    assert progress["to"] == [
        {
            "podSelector": {
                "matchLabels": find(default, "Deployment", "audio-extract-operator")["spec"]["selector"][
                    "matchLabels"
                ]
            }
        }
    ]
    assert progress["ports"] == [{"protocol": "TCP", "port": 8081}]
    assert "ports" not in public
    assert public["to"] == [
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_V4}},
        {"ipBlock": {"cidr": "::/0", "except": PRIVATE_V6}},
    ]


def test_api_and_operator_ingress_only_where_needed(default: Objects) -> None:
    api = find(default, "NetworkPolicy", "audio-extract-api")["spec"]
    assert api["policyTypes"] == ["Ingress", "Egress"]
    assert api["ingress"] == [{"ports": [{"protocol": "TCP", "port": "http"}]}]
    op = find(default, "NetworkPolicy", "audio-extract-operator")["spec"]
    assert op["policyTypes"] == ["Ingress", "Egress"]
    [rule] = op["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": "progress"}]
    workers = find(default, "NetworkPolicy", "audio-extract-worker")["spec"]["podSelector"]
    assert rule["from"] == [{"podSelector": workers}]


KUBE_API_ANY = {"ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]}


def test_api_egress_is_dns_and_the_kubernetes_api_only(default: Objects) -> None:
    worker_dns = find(default, "NetworkPolicy", "audio-extract-worker")["spec"]["egress"][0]
    egress = find(default, "NetworkPolicy", "audio-extract-api")["spec"]["egress"]
    dns, kube_api, store = egress
    assert (dns, kube_api) == (worker_dns, KUBE_API_ANY)  # no `to`: any address, on the API server's ports
    assert store["ports"] == [{"protocol": "TCP", "port": 443}]  # the S3 store (public addresses by default)


def test_operator_egress_is_dns_the_kubernetes_api_and_webhook_targets(default: Objects) -> None:
    worker = find(default, "NetworkPolicy", "audio-extract-worker")["spec"]["egress"]
    egress = find(default, "NetworkPolicy", "audio-extract-operator")["spec"]["egress"]
    dns, kube_api, store, public = egress
    assert dns == worker[0]
    assert kube_api == KUBE_API_ANY
    assert store == worker[2]  # the S3 store, on its port
    assert public == {
        "to": [
            {"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_V4}},
            {"ipBlock": {"cidr": "::/0", "except": PRIVATE_V6}},
        ]
    }  # webhooks, any port


def test_helm_test_pod_egress_is_dns_and_the_api_pods(default: Objects) -> None:
    policy = find(default, "NetworkPolicy", "audio-extract-test")["spec"]
    pod = find(default, "Pod", "audio-extract-test-healthz")
    assert selects(policy["podSelector"], pod["metadata"]["labels"])
    assert policy["policyTypes"] == ["Ingress", "Egress"] and not policy.get("ingress")
    dns, api = policy["egress"]
    assert dns == find(default, "NetworkPolicy", "audio-extract-worker")["spec"]["egress"][0]
    api_pods = find(default, "Deployment", "audio-extract-api")["spec"]["selector"]
    assert api == {"to": [{"podSelector": api_pods}], "ports": [{"protocol": "TCP", "port": 8000}]}


def test_store_claim_is_shared_read_write_many() -> None:
    default = render({"store": {"type": "volume"}})
    pvc = find(default, "PersistentVolumeClaim", "audio-extract-store")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "100Gi"
    assert "storageClassName" not in pvc["spec"]
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    for name in ("audio-extract-api", "audio-extract-operator"):
        volumes = find(default, "Deployment", name)["spec"]["template"]["spec"]["volumes"]
        assert {"name": "store", "persistentVolumeClaim": {"claimName": "audio-extract-store"}} in volumes
    assert (
        env_of(find(default, "Deployment", "audio-extract-operator"))[OPERATOR_PREFIX + "STORE__CLAIM"]
        == "audio-extract-store"
    )


def test_helm_test_hook_calls_healthz(default: Objects) -> None:
    pod = find(default, "Pod", "audio-extract-test-healthz")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert (
        pod["spec"]["containers"][0]["command"][-1] == "http://audio-extract-api.audio-extract.svc:80/healthz"
    )


def test_notes_render_with_warnings_for_missing_keys() -> None:
    bucket = ("--set", "store.s3.bucket=media")  # the one value an install must give
    out = helm(
        "install", "audio-extract", str(CHART), "--dry-run=client", "--namespace", NAMESPACE, *bucket
    ).stdout
    assert "kubectl -n audio-extract port-forward svc/audio-extract-api 8000:80" in out
    assert "secrets.apiKeys is empty" in out
    assert "networkPolicy.kubeAPIServer.peers is empty" in out
    peers = 'networkPolicy.kubeAPIServer.peers=[{"ipBlock":{"cidr":"10.99.0.1/32"}}]'
    narrowed = helm(
        "install",
        "audio-extract",
        str(CHART),
        "--dry-run=client",
        "--namespace",
        NAMESPACE,
        "--set-json",
        peers,
        *bucket,
    ).stdout
    assert "kubeAPIServer.peers is empty" not in narrowed


def test_notes_name_the_ingress_url_when_there_is_one() -> None:
    ingress = ("--set", "api.ingress.enabled=true", "--set", "api.ingress.host=media.example.org")
    bucket = ("--set", "store.s3.bucket=media")

    def notes(*values: str) -> str:
        out = helm("install", "audio-extract", str(CHART), "--dry-run=client", *bucket, *values).stdout
        return out[out.index("NOTES:") :]

    plain = notes(*ingress)
    assert "curl -s http://media.example.org/healthz" in plain
    assert "http://media.example.org/v1/batch" in plain and "port-forward" not in plain
    tls = notes(*ingress, "--set", "api.ingress.tlsSecretName=media-tls")
    assert "curl -s https://media.example.org/healthz" in tls
    assert "https://media.example.org/v1/batch" in tls


# --- the operator's Job, built from the chart's settings ------------------------------------------------


def test_worker_jobs_follow_the_chart(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a volume release (tests/chart/test_chart_store.py: the S3 one)."""
    from audio_extract_operator.jobs import build_job

    default = render({"store": {"type": "volume"}})
    settings = operator_settings(default, monkeypatch)
    assert settings.namespaces == [NAMESPACE]
    job = build_job(sample_batch(), 0, settings)
    pod = job["spec"]["template"]
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "audio-extract-worker"
    assert spec["automountServiceAccountToken"] is False
    assert {"name": "store", "persistentVolumeClaim": {"claimName": "audio-extract-store"}} in spec["volumes"]
    container = spec["containers"][0]
    assert container["image"] == "ghcr.io/audio-extract/audio-extract:0.1.0"
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "256Mi", "ephemeral-storage": "1Gi"},
        "limits": {"cpu": "2", "memory": "1Gi", "ephemeral-storage": "6400Mi"},
    }
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (
        env["AUDIO_EXTRACT_WORKER_PROGRESS_URL"]
        == "http://audio-extract-operator.audio-extract.svc:8081/progress"
    )
    assert env["AUDIO_EXTRACT_WORKER_STORE_ROOT"] == "/data"
    assert job["spec"]["activeDeadlineSeconds"] == 1800
    assert "priorityClassName" not in spec
    # the NetworkPolicies select exactly these pods
    selector = find(default, "NetworkPolicy", "audio-extract-worker")["spec"]["podSelector"]
    assert selects(selector, pod["metadata"]["labels"])
    for name in ("audio-extract-api", "audio-extract-operator"):
        labels = find(default, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert not selects(selector, labels)


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        present = expr["key"] in labels
        if expr["operator"] == "Exists" and not present:
            return False
        if expr["operator"] == "In" and labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


# --- non-default values -----------------------------------------------------------------------------

CUSTOM = {
    "fullnameOverride": "ax",
    "image": {"repository": "registry.example.com/ax", "tag": "1.2.3", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "regcred"}],
    "secrets": {
        "apiKeys": {
            "ci": DIGEST,
            "reader": f"{'b' * 64} read",
            "acme-ci": f"{'c' * 64} read,write tenant=acme",
            "ops": f"{'d' * 64} admin",
        },
        "existingSecret": "ax-operator-secrets",
    },
    "allowCIDRs": ["10.20.0.0/16"],
    "store": {"type": "volume", "claimName": "shared-media", "storageClassName": "nfs", "size": "2Ti"},
    "api": {
        "replicas": 3,
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "host": "ax.example.com",
            "tlsSecretName": "ax-tls",
        },
        "networkPolicy": {"ingressFrom": [{"namespaceSelector": {"matchLabels": {"name": "ingress"}}}]},
        "env": {"AUDIO_EXTRACT_API_RATE_LIMIT_BURST": "20"},
    },
    "worker": {
        "kueueQueueName": "media",
        "maxRunning": 32,
        "activeDeadlineSeconds": 600,
        "priorityClassNames": {"high": "ax-high"},
        "image": {"tag": "1.2.3-ffmpeg"},
        "scratchSizeLimit": "20Gi",
        "resources": {"requests": {"ephemeral-storage": "2Gi"}, "limits": {"ephemeral-storage": "21Gi"}},
    },
    "networkPolicy": {
        "clusterCIDRs": ["203.0.113.0/24", "2001:db8::/48"],
        "kubeAPIServer": {"peers": [{"ipBlock": {"cidr": "10.99.0.1/32"}}], "ports": [6443]},
    },
}


@pytest.fixture(scope="module")
def custom() -> Objects:
    return render(CUSTOM, namespace="media")


def test_custom_names_images_and_pull_secrets(custom: Objects) -> None:
    names = {o["metadata"]["name"] for o in custom}
    assert {"ax-api", "ax-operator", "ax-worker", "ax-api-keys", "shared-media"} <= names
    assert "ax-operator" not in {o["metadata"]["name"] for o in custom if o["kind"] == "Secret"}
    for spec in pod_specs(custom).values():
        assert spec["containers"][0]["image"] == "registry.example.com/ax:1.2.3"
        assert spec["containers"][0]["imagePullPolicy"] == "Always"
    for name in ("ax-api", "ax-operator"):
        spec = find(custom, "Deployment", name)["spec"]["template"]["spec"]
        assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert find(custom, "ServiceAccount", "ax-worker")["imagePullSecrets"] == [{"name": "regcred"}]
    assert find(custom, "Deployment", "ax-api")["spec"]["replicas"] == 3


def test_custom_secrets(custom: Objects) -> None:
    keys = find(custom, "Secret", "ax-api-keys")
    assert keys["stringData"] == {
        "ci": DIGEST,
        "reader": f"{'b' * 64} read",
        "acme-ci": f"{'c' * 64} read,write tenant=acme",
        "ops": f"{'d' * 64} admin",
    }
    env = env_of(find(custom, "Deployment", "ax-operator"))
    assert env[OPERATOR_PREFIX + "WEBHOOK__SECRET"] == (
        "secret",
        "ax-operator-secrets",
        "webhook-signing-secret",
    )
    assert env[OPERATOR_PREFIX + "PROGRESS__SECRET"] == ("secret", "ax-operator-secrets", "progress-secret")
    existing = render(
        {
            "secrets": {
                "existingApiKeysSecret": "mine",
                "existingSecret": "theirs",
                "existingApiSecret": "ours",
            }
        }
    )
    assert not [o for o in existing if o["kind"] == "Secret"]
    assert env_of(find(existing, "Deployment", "audio-extract-api"))[API_PREFIX + "IDEMPOTENCY_SECRET"] == (
        "secret",
        "ours",
        "idempotency-secret",
    )
    api = find(existing, "Deployment", "audio-extract-api")["spec"]["template"]["spec"]
    assert {"name": "api-keys", "secret": {"secretName": "mine", "defaultMode": 0o440}} in api["volumes"]


def test_store_limits_reach_the_api_and_the_operator(default: Objects) -> None:
    api = env_of(find(default, "Deployment", "audio-extract-api"))
    assert (
        api[API_PREFIX + "UPLOAD_QUOTA_BYTES"],
        api[API_PREFIX + "UPLOAD_QUOTA_COUNT"],
        api[API_PREFIX + "STORE_MIN_FREE_BYTES"],
    ) == ("20000000000", "100", "2147483648")
    assert (
        env_of(find(default, "Deployment", "audio-extract-operator"))[
            OPERATOR_PREFIX + "RETENTION__UPLOAD_SECONDS"
        ]
        == "86400"
    )
    custom = render(
        {
            "api": {"uploadQuotaBytes": 0, "uploadQuotaCount": 5, "storeMinFreeBytes": 10**10},
            "operator": {"uploadRetentionSeconds": 3600},
        }
    )
    api = env_of(find(custom, "Deployment", "audio-extract-api"))
    assert (
        api[API_PREFIX + "UPLOAD_QUOTA_BYTES"],
        api[API_PREFIX + "UPLOAD_QUOTA_COUNT"],
        api[API_PREFIX + "STORE_MIN_FREE_BYTES"],
    ) == ("0", "5", "10000000000")
    assert (
        env_of(find(custom, "Deployment", "audio-extract-operator"))[
            OPERATOR_PREFIX + "RETENTION__UPLOAD_SECONDS"
        ]
        == "3600"
    )


def test_custom_ingress(custom: Objects) -> None:
    ingress = find(custom, "Ingress", "ax-api")["spec"]
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["tls"] == [{"hosts": ["ax.example.com"], "secretName": "ax-tls"}]
    backend = ingress["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "ax-api", "port": {"name": "http"}}
    assert not [o for o in render() if o["kind"] == "Ingress"]


def test_custom_store(custom: Objects) -> None:
    pvc = find(custom, "PersistentVolumeClaim", "shared-media")["spec"]
    assert pvc["storageClassName"] == "nfs"
    assert pvc["resources"]["requests"]["storage"] == "2Ti"
    env = env_of(find(custom, "Deployment", "ax-operator"))
    assert env[OPERATOR_PREFIX + "STORE__CLAIM"] == "shared-media"
    own = render({"store": {"type": "volume", "create": False, "claimName": "byo"}})
    assert not [o for o in own if o["kind"] == "PersistentVolumeClaim"]
    volumes = find(own, "Deployment", "audio-extract-api")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "store", "persistentVolumeClaim": {"claimName": "byo"}} in volumes


def test_custom_worker_settings_reach_the_jobs(
    custom: Objects,
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    settings = operator_settings(custom, monkeypatch, "ax-operator")
    assert settings.namespaces == ["media"]
    assert settings.admission.max_running == 32
    batch = sample_batch("media")
    batch["spec"]["jobs"][0]["options"] = {"priority": "high"}
    high, low = worker_job(settings, batch, 0), worker_job(settings, batch, 1)
    assert high["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "media"
    assert high["spec"]["template"]["spec"]["priorityClassName"] == "ax-high"
    assert "priorityClassName" not in low["spec"]["template"]["spec"]
    assert high["spec"]["activeDeadlineSeconds"] == 600
    pod = high["spec"]["template"]["spec"]
    assert {"name": "scratch", "emptyDir": {"sizeLimit": "20Gi"}} in pod["volumes"]
    container = pod["containers"][0]
    assert container["resources"] == {  # the other defaults stay
        "requests": {"cpu": "500m", "memory": "256Mi", "ephemeral-storage": "2Gi"},
        "limits": {"cpu": "2", "memory": "1Gi", "ephemeral-storage": "21Gi"},
    }
    assert container["image"] == "registry.example.com/ax:1.2.3-ffmpeg"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["AUDIO_EXTRACT_WORKER_ALLOW_CIDRS"] == "10.20.0.0/16"
    assert env["AUDIO_EXTRACT_WORKER_PROGRESS_URL"] == "http://ax-operator.media.svc:8081/progress"
    api_env = env_of(find(custom, "Deployment", "ax-api"))
    assert api_env[API_PREFIX + "ALLOW_CIDRS"] == "10.20.0.0/16"
    assert api_env[API_PREFIX + "RATE_LIMIT_BURST"] == "20"
    # no kueue label unless asked
    default_env = env_of(find(render(), "Deployment", "audio-extract-operator"))
    assert OPERATOR_PREFIX + "ADMISSION__KUEUE_QUEUE" not in default_env
    custom_env = env_of(find(custom, "Deployment", "ax-operator"))
    assert json.loads(custom_env[OPERATOR_PREFIX + "WORKER__PRIORITY_CLASSES"]) == {"high": "ax-high"}


def test_custom_network_policies(custom: Objects) -> None:
    worker = find(custom, "NetworkPolicy", "ax-worker")["spec"]["egress"]
    assert worker[2]["to"] == [
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": [*PRIVATE_V4, "203.0.113.0/24"]}},
        {"ipBlock": {"cidr": "::/0", "except": [*PRIVATE_V6, "2001:db8::/48"]}},
    ]
    assert worker[3] == {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]}
    kube_api = {"to": [{"ipBlock": {"cidr": "10.99.0.1/32"}}], "ports": [{"protocol": "TCP", "port": 6443}]}
    assert find(custom, "NetworkPolicy", "ax-api")["spec"]["egress"][1:] == [kube_api]
    operator = find(custom, "NetworkPolicy", "ax-operator")["spec"]["egress"]
    assert operator[1:] == [kube_api, worker[2], worker[3]]  # webhooks: the same public ranges, allowCIDRs
    api = find(custom, "NetworkPolicy", "ax-api")["spec"]["ingress"][0]
    assert api["from"] == [
        {"namespaceSelector": {"matchLabels": {"name": "ingress"}}},
        {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "audio-extract",
                    "app.kubernetes.io/instance": "audio-extract",
                    "app.kubernetes.io/component": "test",
                }
            }
        },
    ]
    test_pod_labels = find(custom, "Pod", "ax-test-healthz")["metadata"]["labels"]
    assert api["from"][1]["podSelector"]["matchLabels"].items() <= test_pod_labels.items()
    off = render({"networkPolicy": {"enabled": False}})
    assert not [o for o in off if o["kind"] == "NetworkPolicy"]


def test_log_format_is_json_by_default_and_text_in_development(default: Objects) -> None:
    from audio_extract_localcluster.release import DevSecrets, dev_values

    for name, prefix in (("api", API_PREFIX), ("operator", OPERATOR_PREFIX)):
        env = env_of(find(default, "Deployment", f"audio-extract-{name}"))
        assert env[f"{prefix}LOG_FORMAT"] == "json", name
    keys = DevSecrets(api_key="axk_a", webhook_secret="whsec_x", other_api_key="axk_b")
    assert dev_values("dev-x", keys, node_port=None)["logFormat"] == "text"
    text = render({"logFormat": "text"})
    assert (
        env_of(find(text, "Deployment", "audio-extract-operator"))[f"{OPERATOR_PREFIX}LOG_FORMAT"] == "text"
    )
    assert "logFormat" in template({"logFormat": "yaml"}, check=False).stderr


# --- monitoring ------------------------------------------------------------------------------------

MONITORING = {
    "monitoring": {
        "podMonitor": {"enabled": True, "labels": {"release": "prom"}},
        "prometheusRule": {"enabled": True, "alertLabels": {"severity": "page", "team": "media"}},
        "grafanaDashboard": {"enabled": True},
    },
    "networkPolicy": {
        "metricsPeers": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ]
    },
}
MONITORING_KINDS = {"PodMonitor", "PrometheusRule", "ConfigMap"}


@pytest.fixture(scope="module")
def monitored() -> Objects:
    return render(MONITORING)


def exported_metric_names() -> set[str]:
    """Every series name the operator and the API register, histograms' and counters' included."""
    from types import SimpleNamespace

    from audio_extract_api.metrics import Metrics
    from audio_extract_operator import metrics

    metrics.watch(SimpleNamespace(jobs={}, blocked=set()), SimpleNamespace(bodies={}))  # the live gauges
    try:
        families = [*metrics.REGISTRY.collect(), *Metrics().registry.collect()]
    finally:
        metrics.watch(None, None)
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}
    names = set()
    for family in families:
        names.add(family.name)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
    return names


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (parsing it: a syntax error fails the test)."""
    import promql_parser

    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr}"
            found.add(node.name)
            return
        if isinstance(node, promql_parser.MatrixSelector):
            walk(node.vector_selector)
            return
        for attr in ("lhs", "rhs", "expr", "args", "param"):
            child = getattr(node, attr, None)
            for c in child if isinstance(child, list) else [child]:
                if c is not None:
                    walk(c)

    walk(promql_parser.parse(expr))
    return found


def monitoring_expressions(objects: Objects) -> dict[str, str]:
    """Where -> PromQL, for every alert and every dashboard panel query."""
    exprs = {}
    rule = find(objects, "PrometheusRule", "audio-extract")
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            exprs[f"alert {r['alert']}"] = r["expr"]
    dashboard = json.loads(
        find(objects, "ConfigMap", "audio-extract-dashboard")["data"]["audio-extract.json"]
    )
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            exprs[f"panel {panel['title']} {target['refId']}"] = target["expr"]
    return exprs


def test_monitoring_is_off_by_default_and_adds_no_scrape_rule(default: Objects) -> None:
    assert not [o for o in default if o["kind"] in MONITORING_KINDS]
    op = find(default, "NetworkPolicy", "audio-extract-operator")["spec"]
    assert len(op["ingress"]) == 1  # the workers' progress only


def test_monitoring_pieces_render(monitored: Objects) -> None:
    kinds = {o["kind"]: o for o in monitored if o["kind"] in MONITORING_KINDS}
    assert set(kinds) == MONITORING_KINDS
    assert (
        kinds["PodMonitor"]["apiVersion"]
        == kinds["PrometheusRule"]["apiVersion"]
        == "monitoring.coreos.com/v1"
    )
    # the PodMonitor selects both components' pods and names ports they have
    monitor = kinds["PodMonitor"]["spec"]
    assert kinds["PodMonitor"]["metadata"]["labels"]["release"] == "prom"
    ports_by_component = {}
    for name in ("api", "operator"):
        deployment = find(monitored, "Deployment", f"audio-extract-{name}")
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert monitor["selector"]["matchLabels"].items() <= labels.items()
        [expression] = monitor["selector"]["matchExpressions"]
        assert labels[expression["key"]] in expression["values"]
        ports_by_component[name] = {
            p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
        }
    endpoints = {e["port"]: e for e in monitor["podMetricsEndpoints"]}
    assert "http" in ports_by_component["api"] and "progress" in ports_by_component["operator"]
    assert set(endpoints) == {"http", "progress"} and {e["path"] for e in endpoints.values()} == {"/metrics"}
    # every alert pages with the configured labels, after a while
    rules = kinds["PrometheusRule"]["spec"]["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == {
        "AudioExtractQueueNotDraining",
        "AudioExtractJobFailureRatioHigh",
        "AudioExtractWebhookBacklogGrowing",
        "AudioExtractOperatorWithoutLeader",
        "AudioExtractStoreNearlyFull",
    }
    for r in rules:
        assert (
            r["labels"] == {"severity": "page", "team": "media"} and r["for"] and r["annotations"]["summary"]
        )
        assert f'namespace="{NAMESPACE}"' in r["expr"], r["expr"]  # only this release's series
    # the dashboard, for Grafana's sidecar
    config_map = kinds["ConfigMap"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["audio-extract.json"])
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert {"Queue", "Throughput", "Latency", "Failures", "Webhooks"} <= set(rows)
    # Prometheus may scrape the operator's (and, when narrowed, the API's) port
    peer = MONITORING["networkPolicy"]["metricsPeers"][0]
    op_rules = find(monitored, "NetworkPolicy", "audio-extract-operator")["spec"]["ingress"]
    assert {"from": [peer], "ports": [{"protocol": "TCP", "port": "progress"}]} in op_rules
    narrowed = render(
        {**MONITORING, "api": {"networkPolicy": {"ingressFrom": [{"ipBlock": {"cidr": "10.1.0.0/16"}}]}}}
    )
    assert peer in find(narrowed, "NetworkPolicy", "audio-extract-api")["spec"]["ingress"][0]["from"]


def test_alert_thresholds_come_from_values() -> None:
    values = {
        "monitoring": {"prometheusRule": {"enabled": True, "failureRatio": 0.25, "storeFreeRatio": 0.05}}
    }
    rules = {
        r["alert"]: r
        for r in find(render(values), "PrometheusRule", "audio-extract")["spec"]["groups"][0]["rules"]
    }
    assert ") > 0.25" in rules["AudioExtractJobFailureRatioHigh"]["expr"]
    assert rules["AudioExtractStoreNearlyFull"]["expr"].rstrip().endswith("< 0.05")


def test_every_alert_and_panel_query_is_promql_naming_only_exported_metrics(monitored: Objects) -> None:
    exported = exported_metric_names()
    # the names the chart relies on are there (a renamed metric fails here, not in production)
    assert {
        "audio_extract_operator_jobs",
        "audio_extract_operator_leader",
        "audio_extract_api_requests_total",
    } <= exported
    exprs = monitoring_expressions(monitored)
    assert len(exprs) > 20
    unknown = {
        where: names - exported
        for where, expr in exprs.items()
        if (names := promql_metric_names(expr)) - exported
    }
    assert not unknown
    used = set().union(*(promql_metric_names(e) for e in exprs.values()))
    assert {"audio_extract_operator_webhook_pending", "audio_extract_operator_job_outcomes_total"} <= used
    dashboard = json.loads(
        find(monitored, "ConfigMap", "audio-extract-dashboard")["data"]["audio-extract.json"]
    )
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert re.search(r"label_values\((\w+),", variable["definition"]).group(1) in exported


def test_promql_check_catches_a_typo() -> None:
    assert promql_metric_names('sum(rate(audio_extract_operator_job_outcome_total{namespace="x"}[5m]))') == {
        "audio_extract_operator_job_outcome_total"
    }
    assert "audio_extract_operator_job_outcome_total" not in exported_metric_names()
    import promql_parser

    with pytest.raises(Exception):  # noqa: B017 (the parser raises its own error type)
        promql_parser.parse("sum(rate(audio_extract_operator_jobs[5m])")


# --- CRD and golden snapshot -------------------------------------------------------------------------


def test_chart_crd_is_the_generated_one() -> None:
    chart_crds = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    assert chart_crds == ["extractionbatches.yaml"]
    assert (CHART / "crds" / "extractionbatches.yaml").read_text() == (
        REPO / "crds" / "extractionbatches.yaml"
    ).read_text(), "run `make crds`"
    objects = render(include_crds=True)
    crd = find(objects, "CustomResourceDefinition")
    assert crd["metadata"]["name"] == "extractionbatches.audioextract.io"


def normalized_default_render() -> str:
    """The default render with the values that are random on every run masked."""
    out = template().stdout
    out = re.sub(r"(checksum/secret: )[0-9a-f]{64}", r"\1<sha256>", out)
    return re.sub(
        r'((?:webhook-signing-secret|progress-secret|idempotency-secret): )"[^"]*"', r'\1"<generated>"', out
    )


def test_default_render_matches_golden() -> None:
    rendered = normalized_default_render()
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(rendered)
    assert GOLDEN.exists(), "no golden file: run with UPDATE_GOLDEN=1"
    assert rendered == GOLDEN.read_text(), "default render changed: review, then UPDATE_GOLDEN=1"


def test_kind_deploy_values_render() -> None:
    """`make kind-deploy` cannot run here (no Docker); its helm flags are checked instead."""
    import shlex
    import subprocess

    recipe = subprocess.run(
        ["make", "-n", "kind-deploy"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    command = re.search(r"^helm upgrade --install .*?(?<!\\)$", recipe, re.M | re.S).group(0)
    command = re.sub(r"\$\((.*?)\)", "0" * 64, command.replace("\\\n", " "))  # the digest's $(...)
    helm_, upgrade, install, release, chart, *flags = shlex.split(command)
    assert (helm_, upgrade, install, release, chart) == (
        "helm",
        "upgrade",
        "--install",
        "audio-extract",
        "charts/audio-extract",
    )
    values = [
        f
        for f in flags
        if f not in ("--wait", "--create-namespace")
        and not f.startswith("--kube-context")
        and f != "kind-audio-extract"
    ]
    rendered = helm("template", release, str(REPO / chart), *values).stdout
    objects = [o for o in yaml.safe_load_all(rendered) if o]
    assert find(objects, "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert (
        find(objects, "Deployment", "audio-extract-api")["spec"]["template"]["spec"]["containers"][0]["image"]
        == "audio-extract:dev"
    )
    assert find(objects, "Secret", "audio-extract-api-keys")["stringData"] == {"dev": "0" * 64}
