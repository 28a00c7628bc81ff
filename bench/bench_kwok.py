"""The operator past one machine, simulated: ``--batches`` batches of ``--jobs`` extraction jobs on
``--nodes`` simulated nodes (KWOK, ``localcluster/audio_extract_localcluster/kwok.py``).

Real: the API server and etcd, the scheduler placing every pod, the Job controller creating and
counting them, the garbage collector, and the operator of this tree (a subprocess under the
chart's RBAC) admitting ``--max-running`` Jobs at a time, mapping each outcome into status and
delivering signed webhooks to a verifying receiver on 127.0.0.1. The controller manager's and the
scheduler's client rate limits are lifted and the Job controller syncs 50 Jobs at once
(``LocalCluster(throttle_controllers=False)``), as a large cluster's are raised, so they do not
bound the run. Simulated: the nodes, and the pods on
them, which start at once and end ``--pod-seconds`` to ``--pod-seconds + --pod-jitter`` later
the way a worker ends — exit code 0 and a worker result (the output file, step timings) in the
container's termination message. The real node is cordoned: every worker lands on a simulated one.

Measured, with every batch created at once (``--threads`` client threads):

- **throughput**: jobs whose status turned terminal per second, over the whole run and between
  the 10th and 90th percentile of completions (steady), against what the pods allow
  (``max_running / mean pod seconds``);
- **Job done → status**: a watch saw the Job's ``Complete`` condition → a watch saw its status
  entry terminal (both watches in this process);
- **webhook**: the Job's ``Complete`` seen → its ``job.completed`` arrived at the receiver;
- **operator CPU per job** (user + system, from its start to the last delivery) and **peak RSS**
  (VmHWM);
- **API requests the operator causes**: the API server's
  ``apiserver_flowcontrol_dispatched_requests_total`` of flow schema ``service-accounts``, which
  only the operator's ServiceAccount falls in here (the controllers' accounts are in kube-system,
  the benchmark is admin), per second and per job, with how many it refused (429) and how long they
  waited in its queues; the operator's own Job end → status histogram; and the CPU of every process
  of the cluster and of the benchmark itself.

``--previous REV`` runs the operator of that git revision instead (a temporary worktree), for a
comparison run after run on the same machine; ``--operator-priority LEVEL`` puts the operator's
requests in that priority level of the API server (a FlowSchema).

    .venv/bin/python bench/bench_kwok.py [--nodes 200] [--batches 2000] [--jobs 10]
        [--max-running 2000] [--pod-seconds 20] [--pod-jitter 10] [--previous REV]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / p) for p in ("common", "operator", "localcluster", "dev", "tests")]

from bench_operator import batch_body, rss_mib  # noqa: E402
from bench_webhooks import SECRET, Watcher, cpu_seconds, first_arrivals, pct  # noqa: E402

from audio_extract_common import ids  # noqa: E402
from audio_extract_common.batch_resource import GROUP, PLURAL, VERSION  # noqa: E402
from audio_extract_common.batch_status import OutputFile, StepTimings  # noqa: E402
from audio_extract_common.results import WorkerResult  # noqa: E402
from audio_extract_dev.webhook_receiver import Receiver  # noqa: E402
from audio_extract_localcluster import kwok, node  # noqa: E402
from audio_extract_localcluster.cluster import LocalCluster  # noqa: E402
from audio_extract_localcluster.host import HOST_IP  # noqa: E402
from support.cluster_objects import install_crd  # noqa: E402
from support.operator_process import OperatorProcess  # noqa: E402

NS = "bench-kwok"
OPERATOR_FLOW_SCHEMA = "service-accounts"
JOB_ID = "JOB_ID"


def worker_done_stage(seconds: float, jitter: float) -> dict[str, Any]:
    """A worker's pod ends as a successful worker does: exit 0, and in its termination message
    the result the operator maps (a 1-minute wav named after the job, the step timings)."""
    result = WorkerResult(
        output=OutputFile(
            filename="audio.wav",
            path=f"{JOB_ID}/audio.wav",
            size=10_584_044,
            duration=60.0,
            format="wav",
            sampleRate=44100,
            channels=2,
            transcoded=True,
        ),
        timings=StepTimings(download=seconds * 0.3, probe=0.1, encode=seconds * 0.6, store=0.2),
    ).to_message()
    message = f'printf `{result.replace(JOB_ID, "%s")}` (index .metadata.labels "{ids.JOB_LABEL}")'
    return kwok.job_pod_done("worker-done", seconds=seconds, jitter=jitter, message=message)


class JobStages(Watcher):
    """The webhook benchmark's watches, and when each Job was first seen unsuspended (admitted) and
    with a pod (the Job controller made it). Not when its pod ran: the Job controller counts a
    ready pod only in a later status update, which here came with the Job's end."""

    def __init__(self, api: Any, namespace: str) -> None:
        super().__init__(api, namespace)
        self.admitted: dict[str, float] = {}
        self.pod_made: dict[str, float] = {}

    def _job(self, job: dict[str, Any], at: float) -> None:
        super()._job(job, at)
        name, status = job["metadata"]["name"], job.get("status") or {}
        if not job["spec"].get("suspend"):
            self.admitted.setdefault(name, at)
        if status.get("active") or status.get("succeeded"):
            self.pod_made.setdefault(name, at)


def flow_schema(name: str, level: str) -> dict[str, Any]:
    return {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": {"name": name},
        "spec": {
            "priorityLevelConfiguration": {"name": level},
            "matchingPrecedence": 1000,
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [
                {
                    "subjects": [
                        {
                            "kind": "ServiceAccount",
                            "serviceAccount": {"name": "audio-extract-operator", "namespace": NS},
                        }
                    ],
                    "resourceRules": [
                        {
                            "verbs": ["*"],
                            "apiGroups": ["*"],
                            "resources": ["*"],
                            "namespaces": ["*"],
                            "clusterScope": True,
                        }
                    ],
                }
            ],
        },
    }


def operator_families(port: int) -> list[Metric]:
    with urllib.request.urlopen(f"http://{HOST_IP}:{port}/metrics", timeout=5) as r:
        return list(text_string_to_metric_families(r.read().decode()))


def operator_status_latency(families: list[Metric]) -> dict[str, float]:
    """The operator's own Job end → status histogram: the bucket bounds its p50 and p95 fall in,
    and the share within 2 s. Measured from the Job's condition, whose time is cut to the second,
    so by up to a second more than it was; nothing in it waits for a watch of this process."""
    buckets: list[tuple[float, float]] = []
    for family in families:
        if family.name == "audio_extract_operator_status_latency_seconds":
            buckets = [(float(s.labels["le"]), s.value) for s in family.samples if s.name.endswith("_bucket")]
    n = buckets[-1][1] if buckets else 0.0
    if not n:
        return {"n": 0}

    def bound(q: float) -> float:
        return next(le for le, count in buckets if count >= q * n)

    return {
        "n": int(n),
        "p50_le_s": bound(0.5),
        "p95_le_s": bound(0.95),
        "within_2s": round(next(c for le, c in buckets if le == 2) / n, 3),
    }


def operator_jobs(families: list[Metric]) -> dict[str, float]:
    """The operator's own job gauges (queued, admitted, running), summed over priorities."""
    counts: dict[str, float] = {}
    for family in families:
        if family.name == "audio_extract_operator_jobs":
            for s in family.samples:
                counts[s.labels["state"]] = counts.get(s.labels["state"], 0) + s.value
    return counts


def operator_calls(families: list[Metric], jobs: int) -> dict[str, float]:
    """The requests of the operator's own client per job, by method and resource (all answers);
    the rest of its requests (the flow schema's count) are kopf's: watches and handler patches."""
    calls: dict[str, float] = {}
    for family in families:
        if family.name == "audio_extract_operator_kube_requests":
            for s in family.samples:
                if s.name.endswith("_total"):
                    key = f"{s.labels['method']} {s.labels['resource']}"
                    calls[key] = calls.get(key, 0.0) + s.value
    return {k: round(v / max(1, jobs), 3) for k, v in sorted(calls.items(), key=lambda kv: -kv[1])}


def flowcontrol(cluster: LocalCluster) -> dict[str, dict[str, float]]:
    """The API server's priority and fairness counters, by flow schema: requests dispatched,
    rejected (429), and seconds spent waiting in its queues (summed)."""
    counts: dict[str, dict[str, float]] = {}

    def add(schema: str, what: str, value: float) -> None:
        row = counts.setdefault(schema, {"dispatched": 0.0, "rejected": 0.0, "wait_s": 0.0})
        row[what] += value

    for family in text_string_to_metric_families(cluster.kubectl("get", "--raw", "/metrics").stdout):
        for s in family.samples:
            if family.name == "apiserver_flowcontrol_dispatched_requests" and s.name.endswith("_total"):
                add(s.labels["flow_schema"], "dispatched", s.value)
            elif family.name == "apiserver_flowcontrol_rejected_requests" and s.name.endswith("_total"):
                add(s.labels["flow_schema"], "rejected", s.value)
            elif family.name == "apiserver_flowcontrol_request_wait_duration_seconds" and s.name.endswith(
                "_sum"
            ):
                add(s.labels["flow_schema"], "wait_s", s.value)
    return counts


def rate(times: list[float], lo: float = 0.0, hi: float = 1.0) -> float:
    """Events per second between the ``lo`` and ``hi`` quantiles of ``times``."""
    ordered = sorted(times)
    if len(ordered) < 2:
        return float("nan")
    a, b = round(lo * (len(ordered) - 1)), round(hi * (len(ordered) - 1))
    return (b - a) / (ordered[b] - ordered[a]) if ordered[b] > ordered[a] else float("nan")


def spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_s": round(pct(values, 50), 3),
        "p95_s": round(pct(values, 95), 3),
        "max_s": round(max(values), 3),
    }


def run_from(revision: str, tmp: Path) -> str:
    """The import path of the operator of ``revision`` (a temporary worktree); empty: this tree's."""
    if not revision:
        return ""
    worktree = tmp / "previous"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(worktree), revision], check=True
    )
    return os.pathsep.join(str(worktree / p) for p in ("common", "operator"))


def run(args: argparse.Namespace) -> dict[str, Any]:
    total, batches = args.batches * args.jobs, args.batches
    with (
        tempfile.TemporaryDirectory(prefix="bench-kwok-") as tmp,
        LocalCluster(Path(tmp) / "cluster", throttle_controllers=False, report=print) as cluster,
        Receiver(SECRET) as rx,
    ):
        install_crd(cluster)
        cluster.kubectl("cordon", node.NODE_NAME)
        cluster.start_kwok([worker_done_stage(args.pod_seconds, args.pod_jitter)])
        started = time.monotonic()
        cluster.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": kwok.nodes(args.nodes)}),
        )
        cluster.kubectl(
            "wait", "--for=condition=Ready", "nodes", "-l", "=".join(kwok.LABEL), "--timeout=300s"
        )
        print(f"{args.nodes} simulated nodes ready in {time.monotonic() - started:.1f} s", flush=True)
        cluster.kubectl("create", "namespace", NS)
        schema = OPERATOR_FLOW_SCHEMA
        if args.operator_priority:
            schema = "audio-extract-operator"
            cluster.kubectl("apply", "-f", "-", input=json.dumps(flow_schema(schema, args.operator_priority)))

        cfg = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=cfg)
        cfg.connection_pool_maxsize = args.threads * 2
        api = kubernetes.client.ApiClient(cfg)
        custom = kubernetes.client.CustomObjectsApi(api)
        op = OperatorProcess(
            cluster,
            NS,
            admission__max_running=args.max_running,
            webhook__secret=SECRET,
            webhook__allow_cidrs="127.0.0.1/32",
        )
        if previous := run_from(args.previous, Path(tmp)):
            op.env["PYTHONPATH"] = previous
        watcher = JobStages(api, NS)
        try:
            op.start()
            assert op.proc is not None
            watcher.start()
            procs = {m.spec.name: m.pid for m in cluster.supervisor.running}
            procs["operator"] = op.proc.pid
            procs["benchmark"] = os.getpid()  # its watches and receiver: starved, they report late
            cpu_before = {name: cpu_seconds(pid) for name, pid in procs.items()}
            flow_before = flowcontrol(cluster)
            # never fetched (the pods are simulated): an address, so nothing is ever resolved
            url, webhook = f"http://{HOST_IP}:9/clip.mp4", rx.url + "hooks"

            def create(_: int) -> None:
                name = ids.batch_object_name(ids.new_key())
                custom.create_namespaced_custom_object(
                    GROUP, VERSION, NS, PLURAL, batch_body(name, url, args.jobs, webhook)
                )

            t0, t0_wall = time.monotonic(), time.time()
            with ThreadPoolExecutor(args.threads) as pool:
                list(pool.map(create, range(batches)))
            created_s = time.monotonic() - t0
            print(f"{batches} batches created in {created_s:.1f} s", flush=True)
            deadline, expected = t0 + args.timeout, total + batches
            peak_rss = 0.0
            while True:
                delivered = len({r.id for r in rx.received})
                peak_rss = max(peak_rss, rss_mib(op.proc.pid, "VmHWM"))
                gauges = operator_jobs(operator_families(op.port))
                print(
                    f"{time.monotonic() - t0:6.0f} s: {len(watcher.job_seen)}/{total} Jobs, "
                    f"{len(watcher.admitted)} admitted, {len(watcher.pod_made)} with a pod, "
                    f"{len(watcher.job_done)} done, "
                    f"{len(watcher.entry_done)} in status; operator's gauges "
                    + " ".join(f"{k} {v:.0f}" for k, v in sorted(gauges.items()))
                    + ", "
                    f"{delivered}/{expected} deliveries, operator RSS {rss_mib(op.proc.pid):.0f} MiB, "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
                if delivered >= expected or time.monotonic() > deadline or not op.alive():
                    break
                time.sleep(10)
            wall_s = time.monotonic() - t0
            families = operator_families(op.port)
            operator_latency = operator_status_latency(families)
            operator_calls_per_job = operator_calls(families, total)
            cpu = {name: round(cpu_seconds(pid) - cpu_before[name], 1) for name, pid in procs.items()}
            flow = {
                schema: {k: v - flow_before.get(schema, {}).get(k, 0.0) for k, v in row.items()}
                for schema, row in flowcontrol(cluster).items()
            }
            items = custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)["items"]
        finally:
            op.stop()
            watcher.stopped.set()
            api.close()
            if args.previous:
                worktree = Path(tmp) / "previous"
                remove = ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)]
                with contextlib.suppress(subprocess.CalledProcessError):
                    subprocess.run(remove, check=True)

    w = watcher
    done, entry, seen = w.job_done, w.entry_done, w.job_seen
    first = first_arrivals(list(rx.received))
    job_rx = {
        ids.job_object_name(r.payload["jobId"]): r.at
        for r in first.values()
        if r.payload and r.payload["event"].startswith("job.")
    }
    states = [j.get("status") for b in items for j in (b.get("status") or {}).get("jobs") or []]
    mean_pod_s = args.pod_seconds + args.pod_jitter / 2
    operator_flow = flow.get(schema, {})
    operator_requests = operator_flow.get("dispatched", 0.0)
    return {
        "operator": args.previous or "this tree",
        "nodes": args.nodes,
        "batches": batches,
        "jobs": total,
        "max_running": args.max_running,
        "pod_seconds": f"{args.pod_seconds}-{args.pod_seconds + args.pod_jitter}",
        "created_s": round(created_s, 1),
        "wall_s": round(wall_s, 1),
        "completed": states.count("completed"),
        "failed": states.count("failed"),
        "job_deliveries": len(job_rx),
        "duplicates": len(rx.received) - len(first),
        "unverified": sum(1 for r in rx.received if not r.verified),
        "all_jobs_created_s": round(max(seen.values()) - t0_wall, 1) if len(seen) == total else None,
        "first_done_s": round(min(entry.values()) - t0_wall, 1) if entry else None,
        "last_done_s": round(max(entry.values()) - t0_wall, 1) if entry else None,
        "job_created_to_admitted": spread([w.admitted[n] - seen[n] for n in w.admitted if n in seen]),
        "job_admitted_to_pod": spread([w.pod_made[n] - w.admitted[n] for n in w.pod_made if n in w.admitted]),
        "pod_made_to_done": spread([done[n] - w.pod_made[n] for n in done if n in w.pod_made]),
        "jobs_per_s": round(rate(list(entry.values())), 1),
        "jobs_per_s_steady": round(rate(list(entry.values()), 0.1, 0.9), 1),
        "pods_allow_per_s": round(args.max_running / mean_pod_s, 1),
        "job_done_to_status": spread([entry[n] - done[n] for n in done if n in entry]),
        "operator_status_latency": operator_latency,
        "job_done_to_webhook": spread([at - done[n] for n, at in job_rx.items() if n in done]),
        "operator_cpu_ms_per_job": round(cpu["operator"] / max(1, total) * 1000, 1),
        "operator_peak_rss_mib": round(peak_rss, 0),
        "operator_requests": int(operator_requests),
        "operator_requests_per_s": round(operator_requests / wall_s, 1),
        "operator_requests_per_job": round(operator_requests / max(1, total), 2),
        "operator_own_requests_per_job": operator_calls_per_job,
        "operator_requests_rejected": int(operator_flow.get("rejected", 0.0)),
        "operator_queue_wait_ms_per_request": round(
            operator_flow.get("wait_s", 0.0) / max(1.0, operator_requests) * 1000, 1
        ),
        "flow_by_schema": {
            schema: {k: round(v, 1) for k, v in row.items()}
            for schema, row in sorted(flow.items())
            if row["dispatched"] or row["rejected"]
        },
        "cpu_s": cpu,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--max-running", type=int, default=2000, help="the operator's admission.max_running")
    parser.add_argument("--pod-seconds", type=float, default=20, help="the shortest a simulated worker runs")
    parser.add_argument("--pod-jitter", type=float, default=10, help="up to this much longer, at random")
    parser.add_argument("--threads", type=int, default=8, help="client threads creating the batches")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--previous", default="", help="run the operator of this git revision instead")
    parser.add_argument("--operator-priority", default="", help="priority level of its requests")
    args = parser.parse_args()
    print(json.dumps(run(args), indent=2), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
