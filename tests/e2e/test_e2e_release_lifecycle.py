"""A release's life: `helm upgrade` to a new image tag while ten jobs run loses none and sends
no webhook twice under different ids; `helm uninstall` removes everything the chart created and
leaves only what the README says it keeps (the CRD, the store's claim, the batches)."""

from __future__ import annotations

import json
import threading
from collections import defaultdict

import pytest
from system import Receiver, System, project_tag

from audio_extract_localcluster import release
from support.media_server import MediaServer
from support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

# what an uninstall keeps includes the store's claim: a volume release
STORE = "volume"

# Kept by `helm uninstall`, as the README says; everything else the release made goes.
KEPT = {"persistentvolumeclaim/audio-extract-store"}
NAMESPACE_DEFAULTS = {"serviceaccount/default", "configmap/kube-root-ca.crt"}
KINDS = (
    "all,configmaps,secrets,serviceaccounts,roles,rolebindings,networkpolicies,"
    "poddisruptionbudgets,ingresses,persistentvolumeclaims,endpointslices,events"
)


def images_running(system: System, component: str) -> set[str]:
    pods = system.get_json("pods", "-l", f"app.kubernetes.io/component={component}")["items"]
    return {
        c["image"]
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        for c in p["spec"]["containers"]
    }


def test_upgrade_while_jobs_run_loses_nothing(system: System, media: MediaServer, receiver: Receiver) -> None:
    jobs = [{"source": {"type": "url", "url": f"{media.url}/slow/av.mp4"}, "output": {"format": "mp3"}}] * 10
    reply = system.api.post("/v1/batch", json={"jobs": jobs, "webhook": receiver.url})
    assert reply.status_code == 202, reply.text
    job_ids = [j["jobId"] for j in reply.json()["data"]["jobs"]]
    wait_for(
        lambda: system.api.get(f"/v1/status/{job_ids[0]}").json()["data"]["status"] == "processing",
        60,
        "the first jobs running",
    )

    # the API answers throughout the rollout (two replicas, a PodDisruptionBudget, readiness)
    errors: list[str] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                code = system.api.get(f"/v1/status/{job_ids[-1]}").status_code
                if code != 200:
                    errors.append(str(code))
            except Exception as e:  # any failure to answer counts
                errors.append(type(e).__name__)
            stop.wait(0.2)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        tag = project_tag(system.cluster, "dev-upgraded")  # a new tag is what an upgrade rolls out
        system.upgrade({"image": {"tag": tag}})
    finally:
        stop.set()
        poller.join()
    new = {f"{release.IMAGE_REPOSITORY}:{tag}"}
    assert images_running(system, "api") == images_running(system, "operator") == new

    final = system.follow(job_ids, timeout=300)
    assert {f["status"] for f in final.values()} == {"completed"}, final
    receiver.wait(11)  # ten job.completed, one batch.completed
    ids_per_event: dict[tuple[str, str], set[str]] = defaultdict(set)
    for headers, body in receiver.calls:
        event = json.loads(body)
        ids_per_event[(event["event"], event.get("jobId", ""))].add(headers["webhook-id"])
    assert {job for kind, job in ids_per_event if kind == "job.completed"} == set(job_ids)
    assert len(ids_per_event) == 11
    # at least once, but a repeat carries the first delivery's id
    assert all(len(ids) == 1 for ids in ids_per_event.values()), ids_per_event
    assert not errors, f"the API failed {len(errors)} requests during the rollout: {errors[:5]}"


def test_uninstall_removes_what_the_release_created(system: System) -> None:
    batches = {
        f"extractionbatch.audioextract.io/{b['metadata']['name']}"
        for b in system.get_json("extractionbatches")["items"]
    }
    assert batches  # the previous test's
    system.helm.uninstall()

    def remaining() -> set[str]:
        return set(system.kubectl("get", KINDS, "-o", "name").split())

    def settled() -> bool:
        # Jobs and their pods belong to the batches (ownerReferences), not to the release
        left = {n for n in remaining() if not n.startswith(("job.batch/", "pod/", "event"))}
        return left == KEPT | NAMESPACE_DEFAULTS and "endpointslice" not in " ".join(left)

    wait_for(settled, 60, "only the kept objects left")
    assert set(system.kubectl("get", "extractionbatches", "-o", "name").split()) == batches
    # the CRD stays (Helm never deletes a chart's CRDs: the batches would go with it)
    system.cluster.kubectl("get", "crd", "extractionbatches.audioextract.io")
    # nothing cluster-scoped of the release is left behind
    cluster_wide = system.cluster.kubectl(
        "get",
        "clusterroles,clusterrolebindings,priorityclasses,"
        "validatingwebhookconfigurations,mutatingwebhookconfigurations",
        "-l",
        f"app.kubernetes.io/instance={release.RELEASE}",
        "-o",
        "name",
    ).stdout.split()
    assert cluster_wide == []
    # the README's clean-up then removes the rest: no finalizer holds a batch without an operator
    system.kubectl("delete", "extractionbatches", "--all", "--timeout=30s")
    system.kubectl("delete", "persistentvolumeclaim", "audio-extract-store", "--timeout=30s")
    wait_for(
        lambda: not {n for n in remaining() if not n.startswith("event")} - NAMESPACE_DEFAULTS,
        60,
        "the namespace empty",
    )
