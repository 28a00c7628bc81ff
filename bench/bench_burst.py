"""Burst admission on the local cluster: ``--batches`` batches of ``--jobs`` jobs created together
(from ``--threads`` client threads), with the operator of this tree and, in the same run on the
same cluster, the operator of ``--previous`` (a git revision, run from a temporary worktree), each
in a fresh namespace. For each:

- **first start**: the first batch's create call returned → a watch saw the first Job unsuspended;
- **all Jobs**: the first batch's create returned → a watch had seen every Job;
- **all entries**: → every batch's status listed all its jobs (the operator's bookkeeping done);
- **operator CPU per job**: the operator's user+system CPU from its start to all entries, divided
  by the number of jobs (its start-up listing included).

The workers run what is admitted (``--running`` at once) on a 1-second wav; the run stops once
every entry exists, before the queue drains.

    .venv/bin/python bench/bench_burst.py [--batches 200] [--jobs 10] [--previous ec975ee^]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / p) for p in ("common", "operator", "localcluster", "dev", "tests")]

from bench_operator import batch_body  # noqa: E402

from audio_extract_common.batch_resource import GROUP, PLURAL, VERSION  # noqa: E402
from audio_extract_dev.media import make_media  # noqa: E402
from audio_extract_localcluster.cluster import LocalCluster  # noqa: E402
from support.cluster_objects import install_crd  # noqa: E402
from support.media_server import MediaServer  # noqa: E402
from support.operator_process import OperatorProcess  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


class JobWatch(threading.Thread):
    """When each Job was first seen, and when the first one was seen unsuspended."""

    def __init__(self, api: Any, namespace: str) -> None:
        super().__init__(daemon=True)
        self.api, self.namespace = api, namespace
        self.seen: dict[str, float] = {}
        self.first_start: float | None = None
        self.stopped = threading.Event()

    def run(self) -> None:
        batch = kubernetes.client.BatchV1Api(self.api)
        while not self.stopped.is_set():
            for ev in kubernetes.watch.Watch().stream(
                batch.list_namespaced_job, self.namespace, timeout_seconds=5
            ):
                job, now = ev["object"], time.monotonic()
                self.seen.setdefault(job.metadata.name, now)
                if not job.spec.suspend and self.first_start is None:
                    self.first_start = now


def entries_complete(api: Any, namespace: str, jobs: int) -> bool:
    custom = kubernetes.client.CustomObjectsApi(api)
    items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
    return bool(items) and all(len((b.get("status") or {}).get("jobs") or []) == jobs for b in items)


def burst(
    cluster: Any,
    api: Any,
    url: str,
    args: argparse.Namespace,
    label: str,
    pythonpath: str | None,
    concurrency: int | None,
) -> dict[str, Any]:
    namespace = f"burst-{label}-{uuid.uuid4().hex[:6]}"
    kubernetes.client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    settings = {"admission__max_running": args.running}
    if concurrency is not None:
        settings["admission__create_concurrency"] = concurrency
    op = OperatorProcess(cluster, namespace, **settings)
    if pythonpath:
        op.env["PYTHONPATH"] = pythonpath
    op.start()
    assert op.proc is not None
    cpu_before = cpu_seconds(op.proc.pid)
    watch = JobWatch(api, namespace)
    watch.start()
    custom = kubernetes.client.CustomObjectsApi(api)
    returned: list[float] = []

    def create(i: int) -> None:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, batch_body(f"burst-{i:04d}", url, args.jobs)
        )
        returned.append(time.monotonic())

    started = time.monotonic()
    with ThreadPoolExecutor(args.threads) as pool:
        list(pool.map(create, range(args.batches)))
    t0 = min(returned)
    total = args.batches * args.jobs
    deadline = time.monotonic() + args.timeout
    while len(watch.seen) < total and time.monotonic() < deadline:
        time.sleep(0.1)
    all_jobs = max(watch.seen.values()) - t0 if len(watch.seen) == total else None
    while not entries_complete(api, namespace, args.jobs) and time.monotonic() < deadline:
        time.sleep(0.5)
    all_entries = time.monotonic() - t0
    cpu = cpu_seconds(op.proc.pid) - cpu_before
    watch.stopped.set()
    op.stop()
    kubernetes.client.CoreV1Api(api).delete_namespace(namespace)
    return {
        "operator": label,
        "create_concurrency": concurrency,
        "jobs": total,
        "seconds_to_create_batches": round(max(returned) - started, 2),
        "first_start_s": round(watch.first_start - t0, 2) if watch.first_start else None,
        "all_jobs_s": round(all_jobs, 1) if all_jobs is not None else None,
        "all_entries_s": round(all_entries, 1),
        "operator_cpu_ms_per_job": round(cpu / total * 1000, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=16, help="client threads creating the batches")
    parser.add_argument("--running", type=int, default=4, help="the operator's admission.max_running")
    parser.add_argument(
        "--previous",
        default="ec975ee^",
        help="the revision whose operator to compare with (default: the last before burst admission)",
    )
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--create-concurrency",
        type=int,
        nargs="*",
        default=[],
        help="admission.create_concurrency values to run",
    )
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as tmp:
        previous: str | None = None
        if args.previous:
            worktree = Path(tmp) / "previous"
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(worktree), args.previous],
                check=True,
            )
            previous = os.pathsep.join(str(worktree / p) for p in ("common", "operator"))
        try:
            with LocalCluster(Path(tmp) / "cluster", project_image=True) as cluster:
                install_crd(cluster)
                api = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
                media = MediaServer(make_media(Path(tmp) / "media")).start()
                try:
                    url = f"{media.url}/tone.wav"
                    runs: list[tuple[str, str | None, int | None]] = [
                        ("current", None, c) for c in args.create_concurrency or [None]
                    ]
                    if previous is not None:
                        runs.append(("previous", previous, None))
                    for label, path, concurrency in runs:
                        results.append(burst(cluster, api, url, args, label, path, concurrency))
                        print(json.dumps(results[-1]), flush=True)
                finally:
                    media.stop()
        finally:
            if previous is not None:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(Path(tmp) / "previous")]
                )
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
