"""Chaos and load on the installed release: an API replica killed mid-upload and mid-submission,
a worker killed mid-job, the node's container runtime dying mid-job, and a minute of overload.
Kills are SIGKILLs of the container (`crictl stop --timeout 0`), as a dying process or node would
leave it; the runtime's is a SIGKILL of containerd, started again as its service manager would."""

from __future__ import annotations

import random
import statistics
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from system import System

from audio_extract_common import ids
from audio_extract_common.ids import JOB_LABEL
from audio_extract_common.store import is_partial
from support.media_server import MediaServer
from support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

# partial uploads and store-full faults are a volume's (an object store's partial writes: tests/component)
STORE = "volume"

QUEUE_CAPACITY = 10
SYSTEM_VALUES = {
    "api": {"queueCapacity": QUEUE_CAPACITY},
    # partial uploads go once untouched for 5 s; retention passes every 2 s
    "operator": {
        "env": {
            "AUDIO_EXTRACT_OPERATOR_RETENTION__PARTIAL_UPLOAD_GRACE_SECONDS": "5",
            "AUDIO_EXTRACT_OPERATOR_RETENTION__INTERVAL": "2",
        }
    },
}


def running_containers(system: System, name: str) -> list[str]:
    return system.cluster.crictl(
        "ps",
        "-q",
        "--state",
        "running",
        "--label",
        f"io.kubernetes.pod.namespace={system.namespace}",
        "--label",
        f"io.kubernetes.container.name={name}",
    ).stdout.split()


def kill(system: System, container: str) -> None:
    system.cluster.crictl("stop", "--timeout", "0", container)


def api_serving(system: System) -> bool:
    """Both replicas ready, and the Service answering."""
    status = system.get_json("deployment", "audio-extract-api")["status"]
    try:
        return status.get("readyReplicas") == 2 and system.api.get("/readyz").status_code == 200
    except httpx.TransportError:  # no replica ready yet: the Service refuses
        return False


def partials(store: Path) -> list[Path]:
    return [p for p in store.rglob("*") if is_partial(p.name)]


def one_job(url: str) -> dict:
    return {"source": {"type": "url", "url": url}, "output": {"format": "mp3"}}


def pods_of(system: System, job_id: str) -> list[dict]:
    return system.get_json("pods", "-l", f"{JOB_LABEL}={job_id}")["items"]


def test_an_api_killed_mid_upload_leaves_no_partial_file_and_the_retry_works(
    system: System, media: MediaServer
) -> None:
    data = (media.directory / "av.mp4").read_bytes()
    store = system.cluster.volumes_root / system.namespace / "audio-extract-store"

    def slowly():  # about ten seconds for the whole file
        step = max(1, len(data) // 100)
        for i in range(0, len(data), step):
            yield data[i : i + step]
            time.sleep(0.1)

    outcome: dict[str, object] = {}

    def upload() -> None:
        try:
            outcome["reply"] = system.api.post(
                "/v1/uploads",
                content=slowly(),
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
            )
        except httpx.TransportError as e:
            outcome["error"] = e

    sender = threading.Thread(target=upload)
    sender.start()
    wait_for(lambda: partials(store), 20, "the upload arriving in the store")
    for container in running_containers(system, "api"):  # whichever replica has it
        kill(system, container)
    sender.join(60)
    assert "error" in outcome, outcome  # the connection broke: nothing was stored for the client
    left = partials(store)
    assert left, "the killed process left its partial file (what the cleanup is for)"

    wait_for(lambda: api_serving(system), 120, "the API serving again")
    reply = system.api.post("/v1/uploads", content=data, headers={"Content-Type": "application/octet-stream"})
    assert reply.status_code == 201, reply.text
    file_id = reply.json()["data"]["fileId"]
    submitted = system.api.post(
        "/v1/batch",
        json={"jobs": [{"source": {"type": "upload", "file": file_id}, "output": {"format": "mp3"}}]},
    )
    assert submitted.status_code == 202, submitted.text
    (job_id,) = [j["jobId"] for j in submitted.json()["data"]["jobs"]]
    assert system.follow([job_id])[job_id]["status"] == "completed"
    # the operator's retention pass removes what the killed upload left, and only that
    wait_for(lambda: not any(p.exists() for p in left), 60, "the partial upload removed")
    assert partials(store) == []
    assert system.api.get(f"/v1/download/{job_id}").status_code == 200


def test_submissions_retried_through_api_kills_make_one_whole_batch_each(
    system: System, media: MediaServer
) -> None:
    """Six clients submit while API replicas are killed one at a time; each client retries a
    failed submission with its Idempotency-Key until it is answered 202."""
    jobs = [one_job(f"{media.url}/av.mp4")] * 2
    keys = [f"chaos-{uuid.uuid4().hex}" for _ in range(24)]  # long enough for several kills
    before = {b["metadata"]["name"] for b in system.get_json("extractionbatches")["items"]}
    answered: dict[str, str] = {}
    broken: Counter[str] = Counter()  # what the clients met, by kind
    done = threading.Event()

    def client(my_keys: list[str]) -> None:
        for key in my_keys:
            while True:
                try:
                    reply = system.api.post(
                        "/v1/batch", json={"jobs": jobs}, headers={"Idempotency-Key": key}
                    )
                except httpx.TransportError as e:  # killed mid-request, or no replica ready
                    broken[type(e).__name__] += 1
                    time.sleep(0.2)
                    continue
                if reply.status_code == 202:
                    answered[key] = reply.json()["data"]["batchId"]
                    break
                assert reply.status_code == 503, reply.text  # QUEUE_FULL, or a replica not ready
                broken[reply.json()["error"]["code"]] += 1
                time.sleep(0.5)

    def killer() -> None:
        kills = 0
        while not done.is_set() and kills < 6:
            if done.wait(random.uniform(1.0, 3.0)):
                break
            if api_serving(system):  # one replica at a time: the other serves the retries
                kill(system, random.choice(running_containers(system, "api")))
                kills += 1
        broken["kills"] = kills

    clients = [threading.Thread(target=client, args=(keys[i::6],)) for i in range(6)]
    chaos = threading.Thread(target=killer)
    chaos.start()
    for c in clients:
        c.start()
    for c in clients:
        c.join(300)
    done.set()
    chaos.join()
    print(f"submissions: {len(keys)} batches, clients met {dict(broken)}")
    assert len(answered) == len(keys)
    assert broken["kills"] >= 2

    # one batch per key, each whole, and a replay still answers the same one
    batches = system.get_json("extractionbatches")["items"]
    created = [b for b in batches if b["metadata"]["name"] not in before]
    assert len(created) == len(keys)
    assert all(len(b["spec"]["jobs"]) == len(jobs) for b in created)
    assert {b["metadata"]["name"] for b in created} == {
        ids.batch_object_name(ids.parse_batch_id(b) or "") for b in answered.values()
    }
    wait_for(lambda: api_serving(system), 120, "the API serving again")
    key = keys[0]
    replay = system.api.post("/v1/batch", json={"jobs": jobs}, headers={"Idempotency-Key": key})
    assert replay.status_code == 202 and replay.json()["data"]["batchId"] == answered[key]

    job_ids = [
        j["jobId"] for b in answered.values() for j in system.api.get(f"/v1/batch/{b}").json()["data"]["jobs"]
    ]
    final = system.follow(job_ids, timeout=300)
    assert {f["status"] for f in final.values()} == {"completed"}


def test_a_worker_killed_mid_job_is_retried(system: System, media: MediaServer) -> None:
    reply = system.api.post("/v1/batch", json={"jobs": [one_job(f"{media.url}/slow/av.mp4")]})
    assert reply.status_code == 202, reply.text
    (job_id,) = [j["jobId"] for j in reply.json()["data"]["jobs"]]
    wait_for(lambda: running_containers(system, "worker"), 120, "the worker running")
    (worker,) = running_containers(system, "worker")
    kill(system, worker)

    final = system.follow([job_id], timeout=300)[job_id]
    assert final["status"] == "completed", final
    phases = sorted(p["status"]["phase"] for p in pods_of(system, job_id))
    assert phases == ["Failed", "Succeeded"]  # the killed pod, then its retry


def test_the_node_runtime_dying_mid_job_loses_nothing(system: System, media: MediaServer) -> None:
    reply = system.api.post("/v1/batch", json={"jobs": [one_job(f"{media.url}/slow/av.mp4")] * 2})
    assert reply.status_code == 202, reply.text
    job_ids = [j["jobId"] for j in reply.json()["data"]["jobs"]]
    wait_for(lambda: len(running_containers(system, "worker")) == 2, 120, "both workers running")
    took = system.cluster.crash_runtime()
    print(f"containerd killed and answering again in {took:.1f} s")

    final = system.follow(job_ids, timeout=300)
    assert {f["status"] for f in final.values()} == {"completed"}, final
    for job_id in job_ids:  # the containers lived on under their shims: no retry was needed
        assert [p["status"]["phase"] for p in pods_of(system, job_id)] == ["Succeeded"]


BATCH_CREATES = {"resource": "extractionbatches", "verb": "POST"}


def apiserver_creates(system: System) -> Counter[str]:
    """How many ExtractionBatch creates the kube-apiserver has served so far, per latency bucket
    (`le`, cumulative), by its own measure: the Kubernetes share of an admission."""
    buckets: Counter[str] = Counter()
    for family in text_string_to_metric_families(system.cluster.kubectl("get", "--raw", "/metrics").stdout):
        if family.name == "apiserver_request_duration_seconds":
            for s in family.samples:
                if s.name.endswith("_bucket") and BATCH_CREATES.items() <= s.labels.items():
                    buckets[s.labels["le"]] += int(s.value)
    return buckets


def slow_creates(before: Counter[str], after: Counter[str]) -> str:
    total = after["+Inf"] - before["+Inf"]
    return f"{total - (after['0.1'] - before['0.1'])} of {total}"


def server_timings(reply: httpx.Response) -> tuple[float, float]:
    """The API app's own share of the request, and the part of it it waited on the Kubernetes API
    (its `Server-Timing: app;dur=<ms>, kube;dur=<ms>`)."""
    spans = dict(span.strip().split(";dur=") for span in reply.headers["server-timing"].split(","))
    return float(spans["app"]) / 1000, float(spans["kube"]) / 1000


def spans(phase: str, timings: list[tuple[float, float]]) -> str:
    """p50 and p99 of the API app's share of the requests, and of its waits on Kubernetes."""
    app, kube = [t[0] for t in timings], [t[1] for t in timings]
    return (
        f"{phase} in the API app p50 {statistics.median(app) * 1000:.0f} ms p99 {p99(app) * 1000:.0f} ms, "
        f"of which on Kubernetes p50 {statistics.median(kube) * 1000:.0f} ms p99 {p99(kube) * 1000:.0f} ms"
    )


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else values[0]


def test_a_minute_of_overload_is_shed_and_every_admitted_job_completes(
    system: System, media: MediaServer
) -> None:
    """For a minute, 30 clients each submit a one-job batch every second (their starts spread over
    the first second), ignoring Retry-After: three times the queue's capacity offered every
    second, against a drain of about a job a second. Only 202, 503 and 429 answers; refusals
    cheaper than admissions; every admitted job completes. (This overloads the queue, not the
    API's CPU: clients that send as fast as answers come back measure the API's own throughput,
    see bench_api.py.)"""
    wait_for(lambda: api_serving(system), 120, "the API serving")
    body = {"jobs": [one_job(f"{media.url}/av.mp4")]}

    def submit() -> tuple[int, float, tuple[float, float], list[str]]:
        started = time.monotonic()
        reply = system.api.post("/v1/batch", json=body)
        took = time.monotonic() - started
        jobs = [j["jobId"] for j in reply.json()["data"]["jobs"]] if reply.status_code == 202 else []
        return reply.status_code, took, server_timings(reply), jobs

    # the baseline: normal load, one job a second (about what the node drains) for 60 s, so
    # workers run as they will under overload, and the queue does not fill
    creates = [apiserver_creates(system)]
    baseline: list[float] = []
    baseline_app: list[tuple[float, float]] = []
    admitted: list[str] = []
    for _ in range(60):
        code, took, app, jobs = submit()
        assert code in (202, 503)
        if code == 202:
            baseline.append(took)
            baseline_app.append(app)
            admitted += jobs
        time.sleep(max(0.0, 1.0 - took))
    assert len(baseline) >= 40
    creates.append(apiserver_creates(system))
    system.follow(admitted, timeout=300)
    creates.append(apiserver_creates(system))

    codes: Counter[int] = Counter()
    latencies: list[float] = []
    latencies_app: list[tuple[float, float]] = []
    shed: list[float] = []
    flooded: list[str] = []
    lock = threading.Lock()
    until = time.monotonic() + 60

    def flood(phase: float) -> None:
        with httpx.Client(
            base_url=system.api_url, headers={"X-API-Key": system.keys.api_key}, timeout=30
        ) as client:
            time.sleep(phase)
            while time.monotonic() < until:
                started = time.monotonic()
                reply = client.post("/v1/batch", json=body)
                took = time.monotonic() - started
                with lock:
                    codes[reply.status_code] += 1
                    if reply.status_code != 202:
                        shed.append(took)
                    else:
                        latencies.append(took)
                        latencies_app.append(server_timings(reply))
                        flooded.extend(j["jobId"] for j in reply.json()["data"]["jobs"])
                time.sleep(max(0.0, 1.0 - took))

    # each client starts 1/n s after the one before it: the load arrives spread over each second,
    # as independent clients send it, not as one burst of n every second (docs/reliability.md)
    n = 3 * QUEUE_CAPACITY
    clients = [threading.Thread(target=flood, args=(i / n,)) for i in range(n)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(120)
    creates.append(apiserver_creates(system))
    print(
        f"overload: {sum(codes.values())} requests in 60 s from {len(clients)} clients at 1/s, answers "
        f"{dict(codes)}; admitted p50 {statistics.median(latencies) * 1000:.0f} ms p99 "
        f"{p99(latencies) * 1000:.0f} ms, refused p50 {statistics.median(shed) * 1000:.0f} ms p99 "
        f"{p99(shed) * 1000:.0f} ms; baseline p50 {statistics.median(baseline) * 1000:.0f} ms p99 "
        f"{p99(baseline) * 1000:.0f} ms (admitted / baseline: p50 "
        f"{statistics.median(latencies) / statistics.median(baseline):.1f}x, p99 "
        f"{p99(latencies) / p99(baseline):.1f}x); the kube-apiserver's creates over 100 ms: baseline "
        f"{slow_creates(*creates[:2])}, overload {slow_creates(*creates[2:])}; "
        f"{spans('admitted', latencies_app)}, {spans('baseline', baseline_app)}"
    )
    assert set(codes) <= {202, 503, 429}, codes
    assert codes[503] > 0 and codes[202] > 0  # it was overloaded, and still admitted work
    # a refusal is decided before the source checks: cheaper than an admission without load
    assert statistics.median(shed) <= statistics.median(baseline)
    # (goal: admitted p99 within 2x of the baseline's; missed on this machine, where the load, the
    # API, its Kubernetes API server and the node share two CPUs: docs/reliability.md)
    final = system.follow(flooded, timeout=600)
    assert {f["status"] for f in final.values()} == {"completed"}
