"""The Helm chart rendered by the real ``helm`` binary, and identities that act under its RBAC.

Chart tests use ``render``/``find``. The operator and API cluster tests run under the chart's
Roles (the single place those rules live) instead of as cluster admin, with ``act_as``::

    from support.chart import act_as

    identity = act_as(cluster, namespace, "operator")   # or "api"; values= for a mode's extra rules
    identity.kubeconfig   # a kubeconfig file: a real ServiceAccount token, no admin rights
    identity.api_client() # a kubernetes.client.ApiClient using it

``act_as`` renders the chart for ``namespace`` and creates that component's ServiceAccount, Role
and RoleBinding there (idempotent), then requests a token for the ServiceAccount (TokenRequest),
so the API server authenticates and authorizes the process exactly as in a real install.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "audio-extract"
RELEASE = "audio-extract"
NAMESPACE = "audio-extract"
K8S_VERSION = "v1.36.3"
COMPONENTS = ("api", "operator", "worker")


def helm_binary() -> Path:
    """The helm built by ``localcluster/build-binaries.sh`` (or found in KUBEBUILDER_ASSETS)."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        return Path(assets) / "helm"
    cache = Path(os.environ.get("AUDIO_EXTRACT_CACHE", Path.home() / ".cache" / "audio-extract"))
    helm = cache / "bin" / f"k8s-{K8S_VERSION}" / "helm"
    if not helm.exists():
        # same build as the cluster's binaries; a no-op when they are present
        subprocess.run(
            ["bash", str(REPO / "localcluster" / "build-binaries.sh")], check=True, stdout=subprocess.DEVNULL
        )
    return helm


def helm(*args: str, check: bool = True, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    # An empty HOME-independent config: no repositories, no plugins, no cache outside a temp dir.
    env = {
        **os.environ,
        "HELM_CACHE_HOME": _helm_home("cache"),
        "HELM_CONFIG_HOME": _helm_home("config"),
        "HELM_DATA_HOME": _helm_home("data"),
    }
    if kubeconfig:
        env["KUBECONFIG"] = str(kubeconfig)
    return subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, check=check, env=env)


_HOME: list[Path] = []


def _helm_home(kind: str) -> str:
    if not _HOME:
        _HOME.append(Path(tempfile.mkdtemp(prefix="audio-extract-helm-")))
    return str(_HOME[0] / kind)


REQUIRED = {"store": {"s3": {"bucket": "audio-extract", "endpoint": "http://10.99.0.1:8333"}}}
"""The one value an install must give (the default store is S3, and its bucket has no default),
and a store on this machine (the local cluster's), so that no process a test starts from a render
ever reaches for AWS's."""


def with_required(values: dict[str, Any] | None) -> dict[str, Any]:
    from audio_extract_localcluster.release import merged

    return merged(REQUIRED, values or {})


def template(
    values: dict[str, Any] | None = None,
    *,
    namespace: str = NAMESPACE,
    release: str = RELEASE,
    include_crds: bool = False,
    show_only: str | None = None,
    check: bool = True,
    required: bool = True,
) -> subprocess.CompletedProcess[str]:
    """``helm template`` of the chart; ``values`` are passed as a values file, over ``REQUIRED``
    unless ``required=False`` (the chart's defaults alone)."""
    values = with_required(values) if required else values
    args = ["template", release, str(CHART), "--namespace", namespace]
    if include_crds:
        args.append("--include-crds")
    if show_only:
        args += ["--show-only", show_only]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(values or {}, f)
    try:
        return helm(*args, "--values", f.name, check=check)
    finally:
        os.unlink(f.name)


def render(values: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """The chart's objects, parsed."""
    out = template(values, **kwargs).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one object of ``kind`` (and ``name``); fails loudly if absent or ambiguous."""
    hits = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {[o['metadata']['name'] for o in hits]}"
    return hits[0]


def component_name(component: str, release: str = RELEASE) -> str:
    """Object names of a component under the default fullname (release name contains the chart name)."""
    return f"{release}-{component}"


def rbac_objects(
    component: str, namespace: str, release: str = RELEASE, values: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The ServiceAccount, Role and RoleBinding the chart renders for ``component`` in ``namespace``
    (with ``values``: e.g. Kueue mode's extra rule)."""
    assert component in COMPONENTS, component
    name = component_name(component, release)
    objects = render(values, namespace=namespace, release=release)
    wanted = [
        o
        for o in objects
        if o["kind"] in ("ServiceAccount", "Role", "RoleBinding") and o["metadata"]["name"] == name
    ]
    assert any(o["kind"] == "ServiceAccount" for o in wanted), f"no ServiceAccount {name}"
    return wanted


def role_rules(component: str, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """The rules of the component's Role (empty for the worker, which has none)."""
    roles = [o for o in rbac_objects(component, namespace) if o["kind"] == "Role"]
    return roles[0]["rules"] if roles else []


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    """name -> value, or name -> ("secret", secretName, key) / ("field", path)."""
    out: dict[str, Any] = {}
    for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
        if "value" in e:
            out[e["name"]] = e["value"]
        elif "secretKeyRef" in e.get("valueFrom", {}):
            ref = e["valueFrom"]["secretKeyRef"]
            out[e["name"]] = ("secret", ref["name"], ref["key"])
        else:
            out[e["name"]] = ("field", e["valueFrom"]["fieldRef"]["fieldPath"])
    return out


# the standard AWS credential chain reads these itself (store.s3.existingSecret)
AWS_CHAIN = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def assert_settings_exist(objects: list[dict[str, Any]], release: str = RELEASE) -> None:
    """Every variable the chart sets names a field of the process's settings (`S3__BUCKET`: the
    field `bucket` of the nested `s3` settings)."""
    from pydantic import BaseModel

    from audio_extract_api.settings import Settings as ApiSettings
    from audio_extract_operator.settings import Settings as OperatorSettings

    for deployment, prefix, settings in (
        (f"{release}-operator", "AUDIO_EXTRACT_OPERATOR_", OperatorSettings),
        (f"{release}-api", "AUDIO_EXTRACT_API_", ApiSettings),
    ):
        names = env_of(find(objects, "Deployment", deployment))
        assert names
        for name in names:
            if name in AWS_CHAIN:
                continue
            assert name.startswith(prefix), name
            model: Any = settings
            *outer, field = name[len(prefix) :].lower().split("__")
            for part in outer:
                annotation = model.model_fields[part].annotation
                model = next(a for a in getattr(annotation, "__args__", (annotation,)) if a is not type(None))
                assert issubclass(model, BaseModel), name
            assert field in model.model_fields, name


def worker_job(settings: Any, batch: dict[str, Any], index: int = 0) -> dict[str, Any]:
    """The Job the operator builds with ``settings``: with an S3 store it needs the URLs it would
    presign (placeholders here)."""
    from datetime import UTC, datetime

    from audio_extract_operator.jobs import WorkerUrls, build_job

    urls = None
    if settings.store.type == "s3":
        urls = WorkerUrls("https://store.example.com/put", f"job_{index}/audio.mp3", datetime.now(UTC))
    return build_job(batch, index, settings, urls)


def operator_settings(
    objects: list[dict[str, Any]], monkeypatch: Any, name: str = "audio-extract-operator"
) -> Any:
    """The operator's Settings as the rendered Deployment's environment makes them (secrets and
    field references get stand-in values); ``monkeypatch`` is pytest's fixture."""
    from audio_extract_operator.settings import Settings

    for key in list(os.environ):
        if key.startswith("AUDIO_EXTRACT_OPERATOR_"):
            monkeypatch.delenv(key)
    for var, value in env_of(find(objects, "Deployment", name)).items():
        if isinstance(value, tuple):
            value = {"secret": "s3cret", "field": "audio-extract"}[value[0]]
        monkeypatch.setenv(var, value)
    return Settings()


def sample_batch(namespace: str = NAMESPACE) -> dict[str, Any]:
    """A sample ExtractionBatch as the API server would return it (namespace and uid set)."""
    batch = yaml.safe_load((REPO / "crds" / "samples" / "batch-mp3-aac.yaml").read_text())
    batch["metadata"].update(namespace=namespace, uid="0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
    return batch


@dataclass(frozen=True)
class Identity:
    """A component's ServiceAccount in a test namespace, with a token-bearing kubeconfig."""

    component: str
    namespace: str
    service_account: str
    kubeconfig: Path

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def api_client(self) -> Any:
        import kubernetes

        return kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig))

    def env(self) -> dict[str, str]:
        """Environment for a subprocess (kopf, uvicorn, kubectl) that should act as this identity."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}


def apply_rbac(
    cluster: Any, namespace: str, component: str, release: str = RELEASE, values: dict[str, Any] | None = None
) -> str:
    """Create (server-side apply) the component's rendered ServiceAccount/Role/RoleBinding; returns
    the ServiceAccount name."""
    objects = rbac_objects(component, namespace, release, values)
    manifest = yaml.safe_dump_all(objects)
    cluster.kubectl("apply", "--server-side", "--field-manager=chart-tests", "-f", "-", input=manifest)
    return component_name(component, release)


def act_as(
    cluster: Any,
    namespace: str,
    component: str,
    *,
    release: str = RELEASE,
    token_hours: int = 3,
    values: dict[str, Any] | None = None,
) -> Identity:
    """Set up the component's chart RBAC in ``namespace`` (rendered with ``values``) and return an
    identity using a real ServiceAccount token (kubectl create token = the TokenRequest API)."""
    sa = apply_rbac(cluster, namespace, component, release, values)
    path = cluster.service_account_kubeconfig(namespace, sa, hours=token_hours)
    return Identity(component, namespace, sa, path)
