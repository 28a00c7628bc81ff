"""A worker's pod sees only its own output directory (writable) and its own upload (read-only) of
the shared store, as the kubelet mounts them: not other jobs' outputs, not other uploads."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest

from audio_extract_localcluster.images import PROJECT_IMAGE
from audio_extract_operator.jobs import build_job
from support.cluster_objects import ensure_store_claim
from support.operator_settings import operator_settings
from support.waiting import wait_for

pytestmark = pytest.mark.cluster

MINE, THEIRS = "upl_00000000000000aa", "upl_00000000000000bb"
PROBE = """
import json, os
def attempt(f):
    try:
        return f()
    except OSError as e:
        return type(e).__name__
out = {
    "listing": sorted(os.listdir("/data")),
    "my_upload": attempt(lambda: open(f"/data/uploads/{MINE}").read()),
    "their_upload": attempt(lambda: open(f"/data/uploads/{THEIRS}").read()),
    "their_output": attempt(lambda: open("/data/job_other/out.mp3").read()),
    "write_mine": attempt(lambda: open(f"/data/{JOB}/out.mp3", "w").write("x")),
    "write_upload": attempt(lambda: open(f"/data/uploads/{MINE}", "w").write("x")),
    "write_root": attempt(lambda: open("/data/evil", "w").write("x")),
}
print(json.dumps(out))
"""


def test_a_worker_sees_only_its_output_and_its_upload(cluster: Any, namespace: str, k8s_api: Any) -> None:
    store = ensure_store_claim(cluster, namespace)
    (store / "uploads").mkdir(mode=0o777)
    (store / "uploads" / MINE).write_text("my video")
    (store / "uploads" / THEIRS).write_text("their video")
    (store / "job_other").mkdir()
    (store / "job_other" / "out.mp3").write_text("their audio")
    batch = {
        "apiVersion": "audioextract.io/v1",
        "kind": "ExtractionBatch",
        "metadata": {"name": "iso", "namespace": namespace, "uid": "0123456789abcdef0123456789abcdef"},
        "spec": {"jobs": [{"source": {"type": "upload", "file": MINE}, "output": {"format": "mp3"}}]},
    }
    settings = operator_settings(
        worker__image=PROJECT_IMAGE, worker__image_pull_policy="Never", progress__secret="s"
    )
    job = build_job(batch, 0, settings)
    job["metadata"].pop("ownerReferences", None)  # no batch object here
    job["spec"]["suspend"] = False
    job["spec"]["backoffLimit"] = 0
    job_id = job["metadata"]["labels"]["audioextract.io/job-id"]
    script = f"MINE, THEIRS, JOB = {MINE!r}, {THEIRS!r}, {job_id!r}\n" + PROBE
    job["spec"]["template"]["spec"]["containers"][0]["command"] = ["python", "-c", script]
    kubernetes.client.BatchV1Api(k8s_api).create_namespaced_job(namespace, job)
    core = kubernetes.client.CoreV1Api(k8s_api)
    selector = f"job-name={job['metadata']['name']}"

    def finished() -> Any:
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        return pods and pods[0].status.phase in ("Succeeded", "Failed") and pods[0]

    pod = wait_for(finished, 90, "the worker pod")
    seen = json.loads(core.read_namespaced_pod_log(pod.metadata.name, namespace).strip().splitlines()[-1])
    assert seen["listing"] == sorted([job_id, "uploads"])
    assert seen["my_upload"] == "my video"
    assert seen["their_upload"] == "FileNotFoundError"
    assert seen["their_output"] == "FileNotFoundError"
    assert seen["write_mine"] == 1
    assert seen["write_upload"] == "OSError" or seen["write_upload"].endswith("Error")
    assert seen["write_upload"] != 1 and seen["write_root"] != 1
    assert (store / job_id / "out.mp3").read_text() == "x"  # the same directory the API serves
    assert not (store / "evil").exists()
