"""Node benchmark: how long the real local node takes to run a pod, and what running an extraction
as a Job costs over running ffmpeg directly, in one run on the same machine.

- cluster start → ready (control plane, node, CoreDNS, images loaded), and stop;
- a trivial pod (busybox `true`, restricted security context): create → Succeeded, sequentially;
- a 5-minute source to mp3 (medium) as an extraction Job through the operator (fetch from the
  node's address, probe, ffmpeg, store, status): batch created → job completed, sequentially,
  against raw ``ffmpeg`` with exactly the worker's argv on the same file on the host.

    .venv/bin/python bench/bench_node.py [--pods 20] [--jobs 3] [--seconds 300]

Not part of the tests; figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # support: the helpers the tests and benchmarks share

import kubernetes  # noqa: E402

from audio_extract_common.batch_resource import API_VERSION, GROUP, KIND, PLURAL, VERSION  # noqa: E402
from audio_extract_common.formats import Format, Quality  # noqa: E402
from audio_extract_localcluster.cluster import LocalCluster  # noqa: E402
from audio_extract_worker.command import OutputSpec, Paths, ffmpeg_args  # noqa: E402
from audio_extract_worker.probe import probe  # noqa: E402
from support.cluster_objects import install_crd, restricted_pod  # noqa: E402
from support.media_server import MediaServer  # noqa: E402
from support.operator_process import OperatorProcess  # noqa: E402
from support.waiting import wait_for  # noqa: E402

NS = "bench"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> str:
    return f"p50 {statistics.median(values):.2f} s, p95 {pct(values, 0.95):.2f} s, n={len(values)}"


def trivial_pods(core: kubernetes.client.CoreV1Api, count: int) -> list[float]:
    took = []
    for i in range(count):
        name = f"trivial-{i}"
        body = restricted_pod(name, ["true"])
        started = time.perf_counter()
        core.create_namespaced_pod(NS, body)
        wait_for(lambda n=name: core.read_namespaced_pod(n, NS).status.phase == "Succeeded", 60, name, 0.02)
        took.append(time.perf_counter() - started)
    return took


def make_source(path: Path, seconds: int) -> None:
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-nostdin",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc=s=160x120:r=10:d={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"sine=f=440:r=48000:d={seconds}",
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-ac",
            "2",
            "-c:v",
            "mpeg4",
            "-q:v",
            "10",
            "-c:a",
            "ac3",
            str(path),
        ],
        check=True,
    )


def raw_ffmpeg(source: Path, work: Path) -> float:
    info = probe(source)
    spec = OutputSpec(format=Format.mp3, quality=Quality.medium)
    argv = ffmpeg_args(spec, info, Paths(source, work / "raw.mp3"))
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - started


def extraction_jobs(k8s_api, url: str, count: int) -> list[float]:
    custom = kubernetes.client.CustomObjectsApi(k8s_api)
    took = []
    for i in range(count):
        name = f"five-minutes-{i}"
        body = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": name},
            "spec": {
                "jobs": [
                    {"source": {"type": "url", "url": url}, "output": {"format": "mp3", "quality": "medium"}}
                ]
            },
        }
        started = time.perf_counter()
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)

        def done(n: str = name) -> dict | None:
            jobs = (
                custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, n).get("status") or {}
            ).get("jobs") or []
            return jobs[0] if jobs and jobs[0]["status"] in ("completed", "failed") else None

        entry = wait_for(done, 600, name, 0.05)
        if entry["status"] != "completed":
            raise SystemExit(f"{name} failed: {entry.get('error')}")
        took.append(time.perf_counter() - started)
    return took


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=300, help="length of the extraction source")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-node-") as tmp:
        work = Path(tmp)
        media = work / "media"
        media.mkdir()
        make_source(media / "five.mp4", args.seconds)
        cluster = LocalCluster(work / "cluster", project_image=True)
        started = time.perf_counter()
        cluster.start()
        ready = time.perf_counter() - started
        try:
            api = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
            core = kubernetes.client.CoreV1Api(api)
            core.create_namespace({"metadata": {"name": NS}})
            wait_for(lambda: core.list_namespaced_service_account(NS).items, 30, "default ServiceAccount")
            pods = trivial_pods(core, args.pods)
            install_crd(cluster)
            server = MediaServer(media).start()
            op = OperatorProcess(cluster, NS, admission__max_running=1).start()
            try:
                baseline = [raw_ffmpeg(media / "five.mp4", work) for _ in range(args.jobs)]
                jobs = extraction_jobs(api, f"{server.url}/five.mp4", args.jobs)
            finally:
                op.stop()
                server.stop()
        finally:
            started = time.perf_counter()
            cluster.stop()
            stopped = time.perf_counter() - started
    print(f"cluster ready {ready:.1f} s, stop {stopped:.1f} s")
    print(f"trivial pod create → Succeeded: {summary(pods)}")
    print(f"raw ffmpeg, {args.seconds} s source → mp3 medium: {summary(baseline)}")
    print(f"extraction Job (batch created → completed): {summary(jobs)}")
    print(f"ratio Job / raw ffmpeg (p50): {statistics.median(jobs) / statistics.median(baseline):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
