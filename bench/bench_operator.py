"""Operator benchmark on the local cluster (real apiserver, Job controller, scheduler, the real
node running the worker on a 1-second wav in the project's image, the operator as a subprocess).

1. **Creation → all Jobs created**: ``--batches`` single-job batches created at ``--rate`` per
   second; latency = the moment the create call returned → the moment a watch on Jobs saw the
   batch's Job.
2. **Job completion → status updated**: for the same batches, the moment a watch saw the Job's
   ``Complete`` condition → the moment a watch on batches saw that job ``completed`` in status.
   Both sides are watches in this process, so watch delivery delay is on both ends.
3. **RSS tracking ``--tracked`` jobs**: a second operator (Kueue mode, so nothing is admitted and
   every Job stays suspended) with ``tracked/10`` batches of 10 jobs; its VmRSS once every batch
   has its Jobs and initialized status.
4. **RSS with ``--retained`` finished batches** (what record retention keeps for 7 days): batches
   of 10 completed jobs (outputs, probed inputs) written while no operator runs; a first operator
   takes them over (kopf records them as handled), then a second one starts with all of them
   already there, as after any restart. Its VmRSS over its start-up listing and a few retention
   passes, and its peak (VmHWM). Goal: ≤ 300 MiB with 20,000.

    .venv/bin/python bench/bench_operator.py [--batches 200] [--rate 10] [--tracked 2000] [--retained 0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / p) for p in ("common", "operator", "localcluster", "dev", "tests")]

from audio_extract_common import ids  # noqa: E402
from audio_extract_common.batch_resource import API_VERSION, GROUP, KIND, PLURAL, VERSION  # noqa: E402
from audio_extract_common.batch_status import BatchStatus, InputFile, JobStatus, OutputFile  # noqa: E402
from audio_extract_dev.media import make_media  # noqa: E402
from audio_extract_localcluster.cluster import LocalCluster  # noqa: E402
from audio_extract_operator.mapping import summarize  # noqa: E402
from audio_extract_operator.statuswriter import stamp_expiry  # noqa: E402
from support.cluster_objects import install_crd  # noqa: E402
from support.media_server import MediaServer  # noqa: E402
from support.operator_process import OperatorProcess  # noqa: E402


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(pct(values, 50) * 1000, 1),
        "p95_ms": round(pct(values, 95) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
        "mean_ms": round(statistics.mean(values) * 1000, 1),
    }


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def batch_body(name: str, url: str, jobs: int, webhook: str | None = None) -> dict[str, Any]:
    """A batch of ``jobs`` identical url → wav jobs, with a batch webhook if given."""
    spec: dict[str, Any] = {
        "jobs": [{"source": {"type": "url", "url": url}, "output": {"format": "wav"}}] * jobs
    }
    if webhook:
        spec["webhook"] = webhook
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": spec}


class Watcher(threading.Thread):
    """Records when each Job appeared / completed and when each status entry became terminal."""

    def __init__(self, api: Any, namespace: str) -> None:
        super().__init__(daemon=True)
        self.api, self.namespace = api, namespace
        self.job_seen: dict[str, float] = {}
        self.job_done: dict[str, float] = {}
        self.entry_done: dict[str, float] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        threading.Thread(target=self._jobs, daemon=True).start()
        self._batches()

    def _jobs(self) -> None:
        batch = kubernetes.client.BatchV1Api(self.api)
        while not self.stopped.is_set():
            for ev in kubernetes.watch.Watch().stream(
                batch.list_namespaced_job, self.namespace, timeout_seconds=30
            ):
                job, now = ev["object"], time.monotonic()
                name = job.metadata.name
                self.job_seen.setdefault(name, now)
                if any(c.type == "Complete" and c.status == "True" for c in job.status.conditions or []):
                    self.job_done.setdefault(name, now)

    def _batches(self) -> None:
        custom = kubernetes.client.CustomObjectsApi(self.api)
        while not self.stopped.is_set():
            for ev in kubernetes.watch.Watch().stream(
                custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                timeout_seconds=30,
            ):
                now = time.monotonic()
                for entry in (ev["object"].get("status") or {}).get("jobs") or []:
                    if entry.get("status") in ("completed", "failed", "cancelled"):
                        self.entry_done.setdefault(entry["jobName"], now)


def wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


def latency_phase(
    cluster: LocalCluster, api: Any, media: MediaServer, batches: int, rate: float, running: int
) -> dict[str, Any]:
    ns = "bench-latency"
    cluster.kubectl("create", "namespace", ns)
    op = OperatorProcess(cluster, ns, rbac=True, admission__max_running=running).start()
    watcher = Watcher(api, ns)
    watcher.start()
    time.sleep(1)
    custom = kubernetes.client.CustomObjectsApi(api)
    created: dict[str, float] = {}
    job_of: dict[str, str] = {}
    for i in range(batches):
        t = time.monotonic()
        obj = custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, batch_body(f"b{i:04d}", f"{media.url}/tone.wav", 1)
        )
        created[obj["metadata"]["name"]] = time.monotonic()
        job_of[obj["metadata"]["name"]] = f"job-{obj['metadata']['uid'].replace('-', '')[:14]}01"
        time.sleep(max(0.0, 1 / rate - (time.monotonic() - t)))
    wait(lambda: all(j in watcher.entry_done for j in job_of.values()), 60 + batches * 3, "all jobs terminal")
    watcher.stopped.set()
    creation = [watcher.job_seen[j] - created[b] for b, j in job_of.items()]
    completion = [
        watcher.entry_done[j] - watcher.job_done[j] for j in job_of.values() if j in watcher.job_done
    ]
    rss = rss_mib(op.proc.pid) if op.proc else 0.0
    op.stop()
    return {
        "creation_to_jobs": summary(creation),
        "job_complete_to_status": summary(completion),
        "operator_rss_mib_after": round(rss, 1),
        "max_running": running,
    }


def rss_phase(cluster: LocalCluster, api: Any, media: MediaServer, tracked: int) -> dict[str, Any]:
    ns = "bench-rss"
    cluster.kubectl("create", "namespace", ns)
    op = OperatorProcess(cluster, ns, rbac=True, admission__kueue_queue="bench-none").start()
    time.sleep(2)
    base = rss_mib(op.proc.pid)  # type: ignore[union-attr]
    custom = kubernetes.client.CustomObjectsApi(api)
    n = tracked // 10
    t0 = time.monotonic()
    for i in range(n):
        custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, batch_body(f"r{i:04d}", f"{media.url}/tone.wav", 10)
        )

    def initialized() -> bool:
        items = custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
        jobs = kubernetes.client.BatchV1Api(api).list_namespaced_job(ns, _preload_content=False)
        count = len(json.loads(jobs.data)["items"])
        return count == tracked and all(len((b.get("status") or {}).get("jobs") or []) == 10 for b in items)

    wait(initialized, 900, f"{tracked} Jobs created")
    elapsed = time.monotonic() - t0
    time.sleep(5)
    samples = []
    for _ in range(10):
        samples.append(rss_mib(op.proc.pid))  # type: ignore[union-attr]
        time.sleep(0.5)
    op.stop()
    return {
        "tracked_jobs": tracked,
        "batches": n,
        "rss_mib_idle_before": round(base, 1),
        "rss_mib_tracking": round(max(samples), 1),
        "seconds_to_create_all": round(elapsed, 1),
    }


HANDLED = "audioextract.io/last-handled-configuration"
"""kopf's record (``AnnotationsDiffBaseStorage(prefix="audioextract.io")``) that it handled a batch."""


def finished_status(key: str, jobs: int, at: str) -> dict[str, Any]:
    """A batch's status once every job completed, as the operator writes it (counts, conditions)."""
    entries = []
    for i in range(jobs):
        job_id = ids.job_id(key, i)
        entries.append(
            JobStatus(
                index=i,
                jobId=job_id,
                jobName=ids.job_object_name(job_id),
                status="completed",
                progress=100,
                createdAt=at,
                startedAt=at,
                completedAt=at,
                currentStep="finalizing",
                inputFile=InputFile(name="tone.wav", size=88244, duration=1.0, format="wav"),
                outputFile=OutputFile(
                    filename="tone.wav", path=f"{job_id}/tone.wav", size=88244, duration=1.0, format="wav"
                ),
            )
        )
    status = BatchStatus(batchId=ids.batch_id(key), jobs=entries)
    return stamp_expiry(summarize(status, at, 1), 86400).model_dump(mode="json", exclude_none=True)


def retained_phase(cluster: LocalCluster, api: Any, retained: int, writers: int) -> dict[str, Any]:
    ns = "bench-retained"
    cluster.kubectl("create", "namespace", ns)
    custom = kubernetes.client.CustomObjectsApi(api)
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def make(i: int) -> None:
        key = f"{i:014x}"  # named like the API names them, so the key (and its label) is known
        body = batch_body(ids.batch_object_name(key), "http://media.invalid/tone.wav", 10)
        body["metadata"]["labels"] = {ids.KEY_LABEL: key}
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, ns, PLURAL, body["metadata"]["name"], {"status": finished_status(key, 10, at)}
        )

    t0 = time.monotonic()
    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(make, range(retained)))
    created = time.monotonic() - t0

    def handled() -> bool:
        token, seen = None, 0
        while True:
            try:
                page = custom.list_namespaced_custom_object(
                    GROUP, VERSION, ns, PLURAL, limit=500, _continue=token
                )
            except kubernetes.client.ApiException as e:
                if e.status not in (429, 504):  # a busy API server's watch cache lags: look again later
                    raise
                return False
            for item in page["items"]:
                if HANDLED not in item["metadata"].get("annotations", {}):
                    return False
                seen += 1
            token = page["metadata"].get("continue")
            if not token:
                return seen == retained

    settings = {"retention__interval": 5.0}
    first = OperatorProcess(cluster, ns, rbac=True, **settings).start()
    t1 = time.monotonic()
    while not handled():  # each check lists every batch: not every 0.2 s
        if time.monotonic() - t1 > 3600:
            raise TimeoutError(f"{retained} batches handled by the first operator")
        time.sleep(10)
    takeover = time.monotonic() - t1
    first_rss = rss_mib(first.proc.pid)  # type: ignore[union-attr]
    first.stop()

    op = OperatorProcess(cluster, ns, rbac=True, **settings).start()
    samples = []
    for _ in range(60):  # 30 s: kopf's listing and resume of every batch, several retention passes
        samples.append(rss_mib(op.proc.pid))  # type: ignore[union-attr]
        time.sleep(0.5)
    peak = rss_mib(op.proc.pid, "VmHWM")  # type: ignore[union-attr]
    op.stop()
    return {
        "retained_batches": retained,
        "seconds_to_create_all": round(created, 1),
        "seconds_first_operator_took_over": round(takeover, 1),
        "first_operator_rss_mib": round(first_rss, 1),
        "rss_mib_after_restart": round(samples[-1], 1),
        "rss_mib_max_after_restart": round(max(samples), 1),
        "peak_rss_mib_after_restart": round(peak, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="batches created per second")
    parser.add_argument("--running", type=int, default=4, help="operator's max_running")
    parser.add_argument("--tracked", type=int, default=2000)
    parser.add_argument("--retained", type=int, default=0, help="finished batches, e.g. 20000")
    parser.add_argument(
        "--writers",
        type=int,
        default=1,
        help="threads writing the retained batches (many stall the API server)",
    )
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp,
        LocalCluster(Path(tmp) / "cluster", project_image=True) as cluster,
    ):
        install_crd(cluster)
        api = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        media = MediaServer(make_media(Path(tmp) / "media")).start()
        try:
            if args.batches:
                results["latency"] = latency_phase(cluster, api, media, args.batches, args.rate, args.running)
                print(json.dumps(results["latency"]), flush=True)
            if args.tracked:
                results["rss"] = rss_phase(cluster, api, media, args.tracked)
                print(json.dumps(results["rss"]), flush=True)
            if args.retained:
                results["retained"] = retained_phase(cluster, api, args.retained, args.writers)
                print(json.dumps(results["retained"]), flush=True)
        finally:
            media.stop()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
