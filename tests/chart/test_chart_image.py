"""The image the chart runs, as the node runs it: every process the chart starts (and the worker
the Jobs run) is in it, it runs as the numeric non-root user the pods' securityContext names, on a
read-only root, and its ffmpeg has every encoder, muxer and filter the worker uses."""

from __future__ import annotations

import json
import re
import time
import tomllib

import kubernetes
import pytest
import yaml

from audio_extract_localcluster.images import PROJECT_IMAGE
from audio_extract_operator.jobs import NONROOT_UID, WORKER_COMMAND
from audio_extract_worker.quality import CODECS
from support.chart import REPO, render
from support.cluster_objects import restricted_pod
from support.waiting import wait_for

PRODUCT = {
    "common": "audio_extract_common",
    "api": "audio_extract_api",
    "operator": "audio_extract_operator",
    "worker": "audio_extract_worker",
}
NOT_PRODUCT_MODULES = {
    "audio_extract_localcluster",
    "audio_extract_dev",
    "support",
    "tests",
    "conftest",
    "pytest",
    "_pytest",
}

pytestmark = [pytest.mark.chart, pytest.mark.cluster]


def run_in_image(k8s_api, namespace: str, name: str, command: list[str], pod_user: int | None) -> str:
    """Run ``command`` in a pod of the project's image (restricted, read-only root); its log."""
    core = kubernetes.client.CoreV1Api(k8s_api)
    core.create_namespaced_pod(namespace, restricted_pod(name, command, PROJECT_IMAGE, pod_user))
    pod = wait_for(
        lambda: (
            (p := core.read_namespaced_pod(name, namespace)).status.phase in ("Succeeded", "Failed") and p
        ),
        120,
        f"pod {name} finished",
    )
    log = core.read_namespaced_pod_log(name, namespace)
    assert pod.status.phase == "Succeeded", log
    return log


def test_every_process_the_chart_starts_is_in_the_image(namespace, k8s_api) -> None:
    commands = [
        c["command"]
        for o in render()
        if o["kind"] == "Deployment"
        for c in o["spec"]["template"]["spec"]["containers"]
    ]
    assert WORKER_COMMAND[:2] == ["tini", "--"]
    commands.append(WORKER_COMMAND[2:])  # tini itself runs in test_the_worker_runs_under_tini
    modules = sorted({c[2] for c in commands})
    assert all(c[:2] == ["python", "-m"] for c in commands), commands
    script = (
        "import importlib.util, json, sys; "
        "print(json.dumps({m: importlib.util.find_spec(m + '.__main__') is not None for m in sys.argv[1:]}))"
    )
    found = json.loads(
        run_in_image(k8s_api, namespace, "modules", ["python", "-c", script, *modules], NONROOT_UID)
    )
    assert found == dict.fromkeys(modules, True)


def test_the_image_runs_as_the_pods_user_on_a_read_only_root(namespace, k8s_api) -> None:
    values = yaml.safe_load((REPO / "charts" / "audio-extract" / "values.yaml").read_text())
    uid = values["podSecurityContext"]["runAsUser"]
    assert uid == NONROOT_UID  # the worker Jobs' pods run as the same user
    # no runAsUser in the pod: the image's own USER is what runs (the group comes from the pod's
    # runAsGroup, which the chart and the Jobs set: containerd gives the image's user group 0)
    out = run_in_image(
        k8s_api,
        namespace,
        "user",
        [
            "sh",
            "-c",
            "id -u; echo $HOME; "
            "touch /probe 2>/dev/null && echo root-writable || echo root-read-only; "
            "python -c 'import sys; print(sys.dont_write_bytecode)'",
        ],
        None,
    )
    assert out.split() == [str(uid), "/tmp", "root-read-only", "True"]


def test_ffmpeg_in_the_image_has_what_the_worker_uses(namespace, k8s_api) -> None:
    script = "; echo ==; ".join(f"ffmpeg -hide_banner -{what}" for what in ("encoders", "muxers", "filters"))
    encoders, muxers, filters = run_in_image(
        k8s_api, namespace, "ffmpeg", ["sh", "-c", script], NONROOT_UID
    ).split("==")
    for codec in CODECS.values():
        assert f" {codec.encoder} " in encoders, codec
        assert f" {codec.muxer} " in muxers, codec
    assert " pcm_s24le " in encoders  # wav at the high tiers
    for name in ("loudnorm", "ebur128", "alimiter", "aresample"):
        assert f" {name} " in filters, name


def test_the_worker_runs_under_tini_so_a_delete_stops_it_at_once(namespace, k8s_api) -> None:
    """PID 1 ignores signals it has no handler for; under tini a worker still starting (here: one
    that never installs a handler) ends on the kubelet's SIGTERM, not at the 30 s grace period."""
    core = kubernetes.client.CoreV1Api(k8s_api)
    command = [*WORKER_COMMAND[:2], "python", "-c", "import time; print('up', flush=True); time.sleep(600)"]
    pod = restricted_pod("worker", command, PROJECT_IMAGE, NONROOT_UID)
    pod["spec"]["terminationGracePeriodSeconds"] = 30
    core.create_namespaced_pod(namespace, pod)

    def started_up() -> bool:
        try:
            return "up" in (core.read_namespaced_pod_log("worker", namespace) or "")  # None while empty
        except kubernetes.client.ApiException:  # 400 while the container is being created
            return False

    wait_for(started_up, 60, "the worker started")
    core.delete_namespaced_pod("worker", namespace)
    started = time.monotonic()

    def gone() -> bool:
        try:
            core.read_namespaced_pod("worker", namespace)
        except kubernetes.client.ApiException as e:
            return e.status == 404
        return False

    wait_for(gone, 40, "the pod deleted")
    assert time.monotonic() - started < 10


def _name(requirement: str) -> str:
    """A requirement's distribution name, normalized (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)[0]).lower()


def test_the_image_holds_the_product_and_its_runtime_dependencies_only(namespace, k8s_api) -> None:
    """No test, dev or local-cluster module is installed: the product's packages are exactly the
    repository's four (no test helpers, CRD generator or receiver among them), and no distribution
    that only the dev extras ask for is there (unless a runtime dependency needs it too)."""
    script = (
        "import importlib.metadata as m, json, os, pathlib, sysconfig; "
        "site = pathlib.Path(sysconfig.get_paths()['purelib']); "
        "print(json.dumps({'top': sorted(os.listdir(site)), "
        "'files': sorted(str(p.relative_to(site)) for p in site.glob('audio_extract_*/**/*.py')), "
        "'dists': {d.metadata['Name']: [r for r in d.requires or [] if 'extra' not in r] "
        "for d in m.distributions()}}))"
    )
    found = json.loads(run_in_image(k8s_api, namespace, "contents", ["python", "-c", script], NONROOT_UID))
    top = {name.removesuffix(".py") for name in found["top"]}
    assert not top & NOT_PRODUCT_MODULES
    assert {t for t in top if t.startswith("audio_extract_")} == set(PRODUCT.values())
    repo_files = sorted(
        str(p.relative_to(REPO / folder))
        for folder, package in PRODUCT.items()
        for p in (REPO / folder / package).rglob("*.py")
    )
    assert found["files"] == repo_files
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = {_name(r) for r in project["dependencies"]}
    dev_only = {_name(r) for extra in project["optional-dependencies"].values() for r in extra} - runtime
    dev_only.discard(_name(project["name"]))  # the dev extra names the local one through the project
    # what the runtime dependencies themselves need (kopf needs pyyaml) is there for them
    needed = {
        _name(r) for d, reqs in found["dists"].items() if _name(d) != _name(project["name"]) for r in reqs
    }
    assert not {_name(d) for d in found["dists"]} & (dev_only - needed)
