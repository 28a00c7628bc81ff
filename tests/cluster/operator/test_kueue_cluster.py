"""The operator's Kueue mode against real Kueue, started in the local cluster: Kueue, not the
operator, admits the extraction Jobs, within its ClusterQueue's quota and by the jobs' priorities;
a queued job says why it waits, in Kueue's words; a preempted job runs again and its outcome is
reported once; two teams on one cohort share its capacity; a cancelled batch leaves no Workload.

Each worker requests 500m CPU (the operator's default), so a quota of 1 CPU runs two at once."""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes
import pytest
import yaml
from test_operator_cluster import create_batch, get_batch, url_job, wait_finished

from audio_extract_common.batch_resource import GROUP, PLURAL, VERSION
from audio_extract_dev.webhook_receiver import Receiver
from audio_extract_localcluster import kueue as kueue_objects
from support.media_server import MediaServer
from support.operator_process import OperatorProcess
from support.waiting import wait_for

pytestmark = pytest.mark.cluster

LOCAL_QUEUE = "media"
CLASS_PREFIX = "aex-test"
CLASSES = {p: f"{CLASS_PREFIX}-{p}" for p in ("low", "normal", "high")}
SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


def kueue_settings(**more: Any) -> dict[str, Any]:
    return {
        "admission__kueue_queue": LOCAL_QUEUE,
        "admission__kueue_priority_classes": CLASSES,
        "admission__interval": 0.5,
        "webhook__secret": SECRET,
        "webhook__jitter": 0.0,
        "webhook__poll_interval": 0.2,
        **more,
    }


@pytest.fixture(scope="module")
def kueue(cluster: Any) -> None:
    cluster.start_kueue()
    objects = [kueue_objects.flavor(), *kueue_objects.priority_classes(CLASS_PREFIX).values()]
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))


@pytest.fixture(autouse=True)
def state_on_failure(request: pytest.FixtureRequest, cluster: Any, namespace: str) -> Iterator[None]:
    """What Kueue and the Job controller made of the test's work, printed when it failed."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for what in ("jobs,workloads,pods", "extractionbatches"):
            print(cluster.kubectl("-n", namespace, "get", what, "-o", "wide", check=False).stdout)
        print(
            cluster.kubectl("-n", namespace, "get", "extractionbatches", "-o", "yaml", check=False).stdout[
                -6000:
            ]
        )
        print(cluster.kubectl("get", "clusterqueues", "-o", "yaml", check=False).stdout[-3000:])


@pytest.fixture
def queue(kueue: None, cluster: Any, namespace: str) -> Iterator[Callable[..., str]]:
    """``queue(cpu, namespace=..., cohort=..., preempt=..., hold=...)``: a ClusterQueue of ``cpu`` CPUs
    and the LocalQueue ``media`` pointing at it; ``hold``: admit nothing until ``release(name)``."""
    made: list[str] = []

    def make(
        cpu: str, *, ns: str = namespace, cohort: str | None = None, preempt: bool = False, hold: bool = False
    ) -> str:
        name = f"cq-{ns}"[:63].rstrip("-")
        cq = kueue_objects.cluster_queue(name, cpu, cohort=cohort, preempt=preempt)
        if hold:
            cq["spec"]["stopPolicy"] = "Hold"
        lq = kueue_objects.local_queue(ns, LOCAL_QUEUE, name)
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([cq, lq]))
        made.append(name)
        return name

    yield make
    for name in made:  # its finalizer waits for its Workloads, which go with the namespace
        cluster.kubectl("delete", "clusterqueue", name, "--wait=false", check=False)


def _service_account_namespaces(core: Any) -> set[str]:
    return {sa.metadata.namespace for sa in core.list_service_account_for_all_namespaces().items}


def release(cluster: Any, cluster_queue: str) -> None:
    cluster.kubectl(
        "patch", "clusterqueue", cluster_queue, "--type=merge", "-p", '{"spec":{"stopPolicy":"None"}}'
    )


def workloads(k8s_api: Any, namespace: str) -> list[dict[str, Any]]:
    api = kubernetes.client.CustomObjectsApi(k8s_api)
    return api.list_namespaced_custom_object("kueue.x-k8s.io", "v1beta2", namespace, "workloads")["items"]


def _running(job: Any) -> bool:
    done = any(c.type in ("Complete", "Failed") and c.status == "True" for c in job.status.conditions or [])
    return not job.spec.suspend and not done


class Sampler:
    """Samples the namespaces' Jobs every 0.2 s: how many run at once (unsuspended, not finished),
    when each was first seen running, and each namespace's running and unfinished counts over time."""

    def __init__(self, k8s_api: Any, namespaces: list[str]) -> None:
        self.api = kubernetes.client.BatchV1Api(k8s_api)
        self.namespaces = namespaces
        self.most = 0
        self.first_running: dict[str, float] = {}
        self.samples: list[tuple[dict[str, int], dict[str, int]]] = []  # (running, unfinished)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            counts, unfinished = {}, {}
            for ns in self.namespaces:
                jobs = self.api.list_namespaced_job(ns).items
                running = [j for j in jobs if _running(j)]
                counts[ns] = len(running)
                unfinished[ns] = sum(1 for j in jobs if j.spec.suspend or _running(j))
                for j in running:
                    self.first_running.setdefault(j.metadata.name, now)
            self.most = max(self.most, sum(counts.values()))
            self.samples.append((counts, unfinished))
            self._stop.wait(0.2)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_kueue_admits_within_its_quota_and_high_priority_first(
    namespace: str,
    cluster: Any,
    media: MediaServer,
    k8s_api: Any,
    queue: Callable[..., str],
    start_operator: Callable[..., OperatorProcess],
) -> None:
    cq = queue("1", hold=True)  # two workers at once, once released
    start_operator(**kueue_settings())
    priorities = ["low"] * 4 + ["normal"] * 3 + ["high"] * 3
    create_batch(
        k8s_api, namespace, "ten", [url_job(f"{media.url}/tone.wav", priority=p) for p in priorities]
    )
    wait_for(lambda: len(workloads(k8s_api, namespace)) == 10, 60, "a Workload per Job")
    # while Kueue holds them, each job is queued and says why in Kueue's words
    waiting = wait_for(
        lambda: (
            (s := get_batch(k8s_api, namespace, "ten").get("status", {}))
            and all(j.get("queueReason") for j in s.get("jobs", []))
            and len(s["jobs"]) == 10
            and s
        ),
        30,
        "a Kueue reason on every queued job",
    )
    assert {j["status"] for j in waiting["jobs"]} == {"queued"}
    assert any(cq in j["queueReason"] or "inactive" in j["queueReason"] for j in waiting["jobs"]), waiting
    by_priority = {
        w["metadata"]["ownerReferences"][0]["name"]: (w["spec"].get("priorityClassRef") or {}).get("name")
        for w in workloads(k8s_api, namespace)
    }
    assert sorted(by_priority.values()) == sorted(CLASSES[p] for p in priorities)
    time.sleep(2)  # several admission intervals: the operator must leave every Job to Kueue
    held = kubernetes.client.BatchV1Api(k8s_api).list_namespaced_job(namespace).items
    assert len(held) == 10 and all(j.spec.suspend for j in held)

    with Sampler(k8s_api, [namespace]) as sampler:
        release(cluster, cq)
        status = wait_finished(k8s_api, namespace, "ten", timeout=300)["status"]
    assert [j["status"] for j in status["jobs"]] == ["completed"] * 10
    assert not any(j.get("queueReason") for j in status["jobs"])
    assert sampler.most == 2, f"at most the quota's two workers run at once, saw {sampler.most}"
    started = {j["jobName"]: sampler.first_running[j["jobName"]] for j in status["jobs"]}
    by = {
        p: [started[j["jobName"]] for j, q in zip(status["jobs"], priorities, strict=True) if q == p]
        for p in CLASSES
    }
    # Whenever a slot freed, Kueue admitted the highest priority waiting. Two slots freeing at
    # once admit two jobs in one scheduling cycle (e.g. the last high and the first normal),
    # which the 0.2 s sampling may see in either order; an inversion would be a whole job
    # (4-6 s here) apart.
    assert max(by["high"]) <= min(by["normal"]) + 1.0, by
    assert max(by["normal"]) <= min(by["low"]) + 1.0, by


def test_a_preempted_job_runs_again_and_is_reported_once(
    namespace: str,
    media: MediaServer,
    k8s_api: Any,
    queue: Callable[..., str],
    start_operator: Callable[..., OperatorProcess],
) -> None:
    queue("500m", preempt=True)  # one worker at a time; a higher priority takes the place
    start_operator(**kueue_settings())
    slow = MediaServer(media.directory, slow_seconds=6).start()  # the low job downloads for 6 s
    try:
        with Receiver(SECRET) as rx:
            create_batch(
                k8s_api,
                namespace,
                "low",
                [url_job(f"{slow.url}/slow/tone.wav", priority="low")],
                webhook=rx.url + "low",
            )
            wait_for(
                lambda: get_batch(k8s_api, namespace, "low").get("status", {}).get("processing") == 1,
                60,
                "the low job running",
            )
            create_batch(
                k8s_api,
                namespace,
                "high",
                [url_job(f"{media.url}/tone.wav", priority="high")],
                webhook=rx.url + "high",
            )
            requeued = wait_for(
                lambda: (
                    (j := get_batch(k8s_api, namespace, "low")["status"]["jobs"][0])["status"] == "queued"
                    and j
                ),
                60,
                "the low job preempted back to queued",
            )
            assert requeued["queueReason"] and requeued.get("startedAt") is None, requeued
            high = wait_finished(k8s_api, namespace, "high", timeout=120)["status"]["jobs"][0]
            low = wait_finished(k8s_api, namespace, "low", timeout=180)["status"]["jobs"][0]
            wait_for(lambda: len(rx.received) >= 4, 60, "each job's and batch's webhook")
            time.sleep(2)  # a duplicate would arrive now
    finally:
        slow.stop()
    assert high["status"] == low["status"] == "completed", (high, low)
    assert low["startedAt"] > high["startedAt"]  # ran again after the high job took its place
    events = sorted((r.path, r.payload["event"], r.payload.get("jobId") or "") for r in rx.received)
    assert events == [  # exactly once each: the preemption is neither a failure nor a second outcome
        ("/high", "batch.completed", ""),
        ("/high", "job.completed", high["jobId"]),
        ("/low", "batch.completed", ""),
        ("/low", "job.completed", low["jobId"]),
    ]
    job = kubernetes.client.BatchV1Api(k8s_api).read_namespaced_job(low["jobName"], namespace)
    assert not job.status.failed, "a pod removed by preemption is not a failed attempt"


def test_two_teams_on_one_cohort_share_its_capacity(
    namespace: str,
    cluster: Any,
    crd: None,
    media: MediaServer,
    k8s_api: Any,
    queue: Callable[..., str],
    start_operator: Callable[..., OperatorProcess],
) -> None:
    core = kubernetes.client.CoreV1Api(k8s_api)
    other = f"{namespace[:56]}-b"
    core.create_namespace({"metadata": {"name": other}})
    cohort = f"co-{namespace}"[:63]
    try:
        queue("500m", cohort=cohort)
        queue("500m", ns=other, cohort=cohort)
        wait_for(lambda: other in _service_account_namespaces(core), 20, "the default ServiceAccount")
        start_operator(**kueue_settings())
        team_b = OperatorProcess(cluster, other, **{"retention__interval": 2.0, **kueue_settings()}).start()
        try:
            # alone, team A borrows B's unused quota: two of its workers run at once
            with Sampler(k8s_api, [namespace]) as alone:
                create_batch(k8s_api, namespace, "a-alone", [url_job(f"{media.url}/tone.wav")] * 4)
                wait_finished(k8s_api, namespace, "a-alone", timeout=180)
            assert alone.most == 2, alone.most
            # under load from both, each team gets about half
            with Sampler(k8s_api, [namespace, other]) as both:
                create_batch(k8s_api, namespace, "a-load", [url_job(f"{media.url}/tone.wav")] * 6)
                create_batch(k8s_api, other, "b-load", [url_job(f"{media.url}/tone.wav")] * 6)
                wait_finished(k8s_api, namespace, "a-load", timeout=240)
                wait_finished(k8s_api, other, "b-load", timeout=240)
        finally:
            team_b.stop()
    finally:
        core.delete_namespace(other)
    # each team's share of the running workers while both had work left
    contended = [c for c, left in both.samples if left[namespace] and left[other]]
    busy_a = sum(c[namespace] for c in contended)
    busy_b = sum(c[other] for c in contended)
    share_a = busy_a / (busy_a + busy_b)
    print(f"team shares under load: A {share_a:.2f}, B {1 - share_a:.2f} ({len(contended)} samples)")
    assert 0.35 <= share_a <= 0.65, (busy_a, busy_b)
    assert both.most <= 2


def test_cancelling_a_queued_batch_removes_its_workloads(
    namespace: str,
    media: MediaServer,
    k8s_api: Any,
    queue: Callable[..., str],
    start_operator: Callable[..., OperatorProcess],
) -> None:
    queue("500m", hold=True)
    start_operator(**kueue_settings())
    create_batch(k8s_api, namespace, "doomed", [url_job(f"{media.url}/tone.wav")] * 3)
    wait_for(lambda: len(workloads(k8s_api, namespace)) == 3, 60, "three Workloads")
    kubernetes.client.CustomObjectsApi(k8s_api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "doomed", {"spec": {"cancel": True}}
    )
    status = wait_finished(k8s_api, namespace, "doomed", timeout=60)["status"]
    assert [j["status"] for j in status["jobs"]] == ["cancelled"] * 3
    wait_for(lambda: not workloads(k8s_api, namespace), 60, "no Workload left")
