"""Release benchmark: N extractions of a 5-minute source to mp3 (medium) through the system as the
chart installs it (`make dev`'s values, `worker.maxRunning` = N), from `POST /v1/batch` until every
job is complete, against raw `ffmpeg` with the worker's exact argv, N at once, on the same file on
the same machine, in one run.

Where the time goes, per job, from the batch view polled every 0.2 s (`GET /v1/batch/{id}`, one
request for all jobs): queued (admission, Job and pod creation, container start) → the worker's
steps (downloading_video, analyzing_video, extracting_audio, finalizing: the store and the status).

    .venv/bin/python bench/bench_release.py [--jobs 10] [--seconds 300]

Not part of the tests; figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # support: the helpers the tests and benchmarks share

import httpx  # noqa: E402
from bench_node import make_source  # noqa: E402

from audio_extract_common.formats import Format, Quality  # noqa: E402
from audio_extract_localcluster import images, release  # noqa: E402
from audio_extract_localcluster.cluster import REPO, LocalCluster  # noqa: E402
from audio_extract_worker.command import OutputSpec, Paths, ffmpeg_args  # noqa: E402
from audio_extract_worker.probe import probe  # noqa: E402
from support.media_server import MediaServer  # noqa: E402

STEPS = ("queued", "downloading_video", "analyzing_video", "extracting_audio", "finalizing")


def raw_ffmpeg(source: Path, work: Path, parallel: int) -> float:
    spec = OutputSpec(format=Format.mp3, quality=Quality.medium)
    info = probe(source)
    argvs = [ffmpeg_args(spec, info, Paths(source, work / f"raw-{i}.mp3")) for i in range(parallel)]
    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        for proc in pool.map(lambda a: subprocess.run(a, capture_output=True), argvs):
            proc.check_returncode()
    return time.perf_counter() - started


def through_the_api(api: httpx.Client, url: str, count: int) -> tuple[float, dict[str, list[float]]]:
    """Wall time POST → all completed, and each step's seconds per job (as seen by polling)."""
    job = {"source": {"type": "url", "url": url}, "output": {"format": "mp3", "quality": "medium"}}
    started = time.perf_counter()
    reply = api.post("/v1/batch", json={"jobs": [job] * count})
    reply.raise_for_status()
    batch = reply.json()["data"]["batchId"]
    first_seen: dict[str, dict[str, float]] = {}
    while True:
        view = api.get(f"/v1/batch/{batch}").json()["data"]
        now = time.perf_counter() - started
        for j in view["jobs"]:
            step = "queued" if j["status"] == "queued" else (j["currentStep"] or "queued")
            step = j["status"] if j["status"] in ("completed", "failed") else step
            first_seen.setdefault(j["jobId"], {"queued": 0.0}).setdefault(step, now)
        statuses = {j["status"] for j in view["jobs"]}
        if statuses <= {"completed", "failed"}:
            if statuses != {"completed"}:
                raise SystemExit(f"jobs failed: {[j['error'] for j in view['jobs'] if j['error']]}")
            wall = now
            break
        time.sleep(0.2)
    per_step: dict[str, list[float]] = {s: [] for s in STEPS}
    for seen in first_seen.values():
        marks = sorted(seen.items(), key=lambda kv: kv[1])
        for (step, at), (_, until) in itertools.pairwise(marks):
            if step in per_step:
                per_step[step].append(until - at)
    return wall, per_step


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=300, help="length of the source")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-release-") as tmp:
        work = Path(tmp)
        media = work / "media"
        media.mkdir()
        make_source(media / "five.mp4", args.seconds)
        cluster = LocalCluster(work / "cluster", project_image=True).start()
        try:
            keys = release.DevSecrets.of(work)
            archive = images.project_image(cluster.bin_dir, REPO)
            tag = release.tag_image(cluster.bin_dir, cluster.workdir, archive)
            helm = release.Helm(cluster.bin_dir, cluster.kubeconfig)
            values = release.dev_values(tag, keys)
            values["worker"]["maxRunning"] = args.jobs
            installed = helm.install(values) + release.wait_serving(release.api_url())
            server = MediaServer(media).start()
            try:
                baseline = raw_ffmpeg(media / "five.mp4", work, args.jobs)
                with httpx.Client(
                    base_url=release.api_url(), headers={"X-API-Key": keys.api_key}, timeout=30
                ) as api:
                    wall, steps = through_the_api(api, f"{server.url}/five.mp4", args.jobs)
            finally:
                server.stop()
        finally:
            cluster.stop()
    print(f"helm upgrade --install → rolled out and serving: {installed:.1f} s")
    print(f"raw ffmpeg, {args.jobs} x {args.seconds} s source → mp3 medium, all at once: {baseline:.2f} s")
    print(f"through the installed system (POST /v1/batch → all completed): {wall:.2f} s")
    print(f"ratio system / raw ffmpeg: {wall / baseline:.2f}")
    for step, took in steps.items():
        if took:
            print(f"  {step:<18} per job: median {statistics.median(took):5.2f} s, max {max(took):5.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
