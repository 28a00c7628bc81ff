"""The operator's metrics on the installed release: `curl` on the leader's `/metrics` (its progress
port, from this machine, which is the node) while a batch runs shows the queued and running gauges
move and, once it ends, the outcomes counted by status, error code and tenant, the worker's step
timings observed; the standby answers with its leader gauge at 0."""

from __future__ import annotations

import itertools
import subprocess
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from system import System

from audio_extract_operator.__main__ import ROLE_LABEL
from support.media_server import MediaServer
from support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

# the store's size and free space are a volume's gauges (an object store's usage: tests/component)
STORE = "volume"

SYSTEM_VALUES = {"worker": {"maxRunning": 2}}
PROGRESS_PORT = 8081
TENANT = "dev"  # the development key's tenant (release.dev_values)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def operator_pods(system: System) -> dict[str, str]:
    """role -> pod IP of the running operator replicas."""
    pods = system.get_json("pods", "-l", "app.kubernetes.io/component=operator")["items"]
    return {
        p["metadata"]["labels"].get(ROLE_LABEL, "?"): p["status"]["podIP"]
        for p in pods
        if p["status"].get("phase") == "Running" and p["status"].get("podIP")
    }


def scrape(ip: str) -> Samples:
    out = subprocess.run(
        ["curl", "-sf", "--max-time", "5", f"http://{ip}:{PROGRESS_PORT}/metrics"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(out)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


JOB_STATES = ("queued", "admitted", "running")


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def test_metrics_follow_a_batch(system: System, media: MediaServer) -> None:
    wait_for(lambda: set(operator_pods(system)) == {"leader", "standby"}, 120, "a leader and a standby")
    pods = operator_pods(system)
    assert value(scrape(pods["standby"]), "audio_extract_operator_leader") == 0
    leader = pods["leader"]
    before = scrape(leader)
    assert value(before, "audio_extract_operator_leader") == 1
    assert total(before, "audio_extract_operator_store_size_bytes") > 0

    slow = {"source": {"type": "url", "url": f"{media.url}/slow/av.mp4"}, "output": {"format": "mp3"}}
    missing = {"source": {"type": "url", "url": f"{media.url}/no-such-file.mp4"}, "output": {"format": "mp3"}}
    reply = system.api.post("/v1/batch", json={"jobs": [slow] * 5 + [missing]})
    assert reply.status_code == 202, reply.text
    job_ids = [j["jobId"] for j in reply.json()["data"]["jobs"]]

    seen: list[tuple[float, float, float]] = []  # (queued, admitted, running) over time

    def gauges() -> tuple[float, float, float]:
        now = scrape(leader)
        queued, admitted, running = (total(now, "audio_extract_operator_jobs", state=s) for s in JOB_STATES)
        seen.append((queued, admitted, running))
        return seen[-1]

    def sample() -> bool:
        gauges()
        statuses = [system.api.get(f"/v1/status/{j}").json()["data"]["status"] for j in job_ids]
        return all(s in ("completed", "failed", "cancelled") for s in statuses)

    started = time.monotonic()
    wait_for(sample, 300, "the batch to end", interval=0.5)
    # the gauges follow the operator's book of Jobs, which sees a Job end when the Job controller
    # marks it, a moment after a failed pod's outcome reached the status: drained soon, not at once
    wait_for(lambda: sum(gauges()) == 0, 15, "the job gauges to drain", interval=0.5)
    after = scrape(leader)

    queued = [q for q, _, _ in seen]
    running = [r for _, _, r in seen]
    assert max(queued) >= 3, seen  # 6 jobs, 2 slots: the rest waited
    assert max(a + r for _, a, r in seen) <= 2, seen  # never more than maxRunning
    assert max(running) >= 1, seen  # a worker's pod ran (each download waits 20 s)
    assert any(q2 < q1 for q1, q2 in itertools.pairwise(queued)), seen  # it moved

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    outcomes = "audio_extract_operator_job_outcomes_total"
    assert delta(outcomes, status="completed", code="", tenant=TENANT) == 5, after
    assert delta(outcomes, status="failed", code="DOWNLOAD_FAILED", tenant=TENANT) == 1, after
    assert delta("audio_extract_operator_jobs_admitted_total", tenant=TENANT) == 6
    assert delta("audio_extract_operator_admission_wait_seconds_count") == 6
    assert delta("audio_extract_operator_status_latency_seconds_count") == 6
    # the worker's timings came with its result: downloads of about 20 s each, encodes timed too
    downloads = delta("audio_extract_operator_job_duration_seconds_count", format="mp3", step="download")
    assert downloads == 6
    assert delta("audio_extract_operator_job_duration_seconds_sum", format="mp3", step="download") >= 5 * 19
    assert delta("audio_extract_operator_job_duration_seconds_count", format="mp3", step="encode") == 5
    assert time.monotonic() - started < 300
    # the status keeps the timings (the resource only: the API's view does not show them)
    batch = system.get_json("extractionbatches")["items"][0]
    entries = batch["status"]["jobs"]
    assert all(e["timings"]["download"] >= 0 for e in entries), entries
    assert "timings" not in system.api.get(f"/v1/status/{job_ids[0]}").json()["data"]
