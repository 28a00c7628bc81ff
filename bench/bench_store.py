"""Store benchmark (issue 15): what the object store costs and saves, in one run on the local cluster,
each figure against a baseline measured in the same run.

Two releases of the chart side by side (`make dev`'s values, `node_port=None`): `bench-s3` on the
cluster's S3 store (SeaweedFS, key prefix `bench-s3`, its key in a Secret) and `bench-volume` on a
volume of the local StorageClass.

1. Download: one large output object (a 16-bit WAV of a `--object-seconds` source, ~200 MB with the
   default 1050 s) extracted on the s3 release, read whole (streamed, counted, dropped) through the
   API (`GET /v1/download/{jobId}`) against straight from the store (a presigned GET of the same
   object, the 307's `Location`), both with httpx; a warm-up round, then `--repeat` rounds
   alternating which goes first. MB/s (10^6 bytes) of the median; ratio API / store (goal >= 0.8).
2. Redirect latency: `GET /v1/download/{jobId}?redirect=true` → 307 against `GET
   /v1/status/{jobId}` → 200 (same job, interleaved, `--requests` each after 5 warm-ups), p50/p99.
3. Upload, the same object's bytes (held in memory): streamed through the API (`POST /v1/uploads`,
   raw body) against direct (`POST /v1/uploads` JSON → PUT to the presigned URL with the returned
   headers; both requests timed); a warm-up round, then `--repeat` rounds. MB/s; ratio streamed / direct.
4. Extraction: a `--seconds` source (MPEG-4 + AC-3, bench_node's) → mp3 medium, one job at a time,
   `POST /v1/batch` → `completed` seen in `GET /v1/status/{jobId}` (polled every 0.1 s), on each
   release (one uncounted job each first, then `--repeat` alternating), against raw `ffmpeg` with
   the worker's exact argv on the same file on this machine.

    .venv/bin/python bench/bench_store.py [--seconds 300] [--repeat 3] [--requests 50] [--object-seconds 1050]

Not part of the tests; prints a markdown table, figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # support: the helpers the tests and benchmarks share

import httpx  # noqa: E402
from bench_node import make_source, pct, raw_ffmpeg  # noqa: E402

from audio_extract_localcluster import images, release  # noqa: E402
from audio_extract_localcluster.cluster import REPO, LocalCluster  # noqa: E402
from support.media_server import MediaServer  # noqa: E402

STORES = ("s3", "volume")
MP3 = {"format": "mp3", "quality": "medium"}
MB = 1_000_000
TIMEOUT = httpx.Timeout(120)  # a 200 MB body either way; the API answers an upload after its last part


def install(cluster: LocalCluster, keys: release.DevSecrets, tag: str, store: str) -> tuple[str, float]:
    """The chart in namespace `bench-<store>` (as tests/e2e/conftest.py installs it); its API's URL
    and the seconds until it served (`helm upgrade --install --wait`, then its NodePort)."""
    namespace = f"bench-{store}"
    s3 = cluster.s3 if store == "s3" else None
    if s3 is not None:  # the namespace and the store's key, before the chart names it
        cluster.kubectl("apply", "-f", "-", input=release.store_secret(s3, namespace))
    helm = release.Helm(cluster.bin_dir, cluster.kubeconfig, namespace=namespace)
    took = helm.install(release.dev_values(tag, keys, node_port=None, s3=s3, store_prefix=namespace))
    service = json.loads(
        cluster.kubectl("-n", namespace, "get", "service", "audio-extract-api", "-o", "json").stdout
    )
    url = release.api_url(service["spec"]["ports"][0]["nodePort"])
    return url, took + release.wait_serving(url)


def extract(api: httpx.Client, url: str, output: dict[str, str]) -> tuple[str, float]:
    """One job, POST → `completed` seen; its id and the seconds."""
    started = time.perf_counter()
    reply = api.post("/v1/batch", json={"jobs": [{"source": {"type": "url", "url": url}, "output": output}]})
    if reply.status_code != 202:
        raise SystemExit(f"POST /v1/batch: {reply.status_code} {reply.text}")
    job = reply.json()["data"]["jobs"][0]["jobId"]
    while True:
        view = api.get(f"/v1/status/{job}").json()["data"]
        if view["status"] in ("completed", "failed", "cancelled"):
            break
        if time.perf_counter() - started > 600:
            raise SystemExit(f"job {job} still {view['status']} after 600 s")
        time.sleep(0.1)
    took = time.perf_counter() - started
    if view["status"] != "completed":
        raise SystemExit(f"job {job} {view['status']}: {view['error']}")
    return job, took


def presigned(api: httpx.Client, job: str) -> str:
    reply = api.get(f"/v1/download/{job}", params={"redirect": "true"})
    if reply.status_code != 307:
        raise SystemExit(f"redirect: {reply.status_code} {reply.text}")
    return reply.headers["location"]


def read_all(client: httpx.Client, url: str, size: int) -> float:
    """Seconds to read `url`'s body whole, counting its bytes as they come (nothing kept)."""
    started = time.perf_counter()
    with client.stream("GET", url) as reply:
        if reply.status_code != 200:
            raise SystemExit(f"GET {url[:80]}: {reply.status_code}")
        got = sum(len(chunk) for chunk in reply.iter_raw())
    took = time.perf_counter() - started
    if got != size:
        raise SystemExit(f"GET {url[:80]}: {got} bytes, expected {size}")
    return took


def downloads(api: httpx.Client, plain: httpx.Client, job: str, size: int, repeat: int) -> dict:
    took: dict[str, list[float]] = {"api": [], "store": []}
    for round_ in range(repeat + 1):  # round 0 warms both paths (caches, connections)
        for side in ("api", "store") if round_ % 2 else ("store", "api"):
            if side == "api":
                seconds = read_all(api, f"/v1/download/{job}", size)
            else:
                url = presigned(api, job)  # not timed: a client holding outputFile.url has it already
                seconds = read_all(plain, url, size)
            if round_:
                took[side].append(seconds)
    return took


def latencies(api: httpx.Client, job: str, count: int, warmup: int = 5) -> dict[str, list[float]]:
    asks = {
        "redirect": (f"/v1/download/{job}", {"redirect": "true"}, 307),
        "status": (f"/v1/status/{job}", {}, 200),
    }
    took: dict[str, list[float]] = {name: [] for name in asks}
    for i in range(warmup + count):
        for name, (path, params, expected) in asks.items():
            started = time.perf_counter()
            reply = api.get(path, params=params)
            seconds = time.perf_counter() - started
            if reply.status_code != expected:
                raise SystemExit(f"GET {path}: {reply.status_code} {reply.text}")
            if i >= warmup:
                took[name].append(seconds)
    return took


def upload_streamed(api: httpx.Client, blob: bytes) -> float:
    started = time.perf_counter()
    reply = api.post("/v1/uploads", content=blob, headers={"Content-Type": "application/octet-stream"})
    took = time.perf_counter() - started
    if reply.status_code != 201 or reply.json()["data"]["size"] != len(blob):
        raise SystemExit(f"streamed upload: {reply.status_code} {reply.text}")
    return took


def upload_direct(api: httpx.Client, plain: httpx.Client, blob: bytes) -> float:
    started = time.perf_counter()
    ask = {"filename": "object.wav", "size": len(blob), "contentType": "application/octet-stream"}
    ticket = api.post("/v1/uploads", json=ask)
    if ticket.status_code != 201:
        raise SystemExit(f"direct upload ticket: {ticket.status_code} {ticket.text}")
    data = ticket.json()["data"]
    put = plain.request(data["method"], data["uploadUrl"], headers=data["headers"], content=blob)
    took = time.perf_counter() - started
    if put.status_code != 200:
        raise SystemExit(f"direct upload PUT: {put.status_code} {put.text[:500]}")
    return took


def uploads(api: httpx.Client, plain: httpx.Client, blob: bytes, repeat: int) -> dict[str, list[float]]:
    took: dict[str, list[float]] = {"streamed": [], "direct": []}
    for round_ in range(repeat + 1):  # round 0 warms both paths
        for side in ("streamed", "direct") if round_ % 2 else ("direct", "streamed"):
            seconds = upload_streamed(api, blob) if side == "streamed" else upload_direct(api, plain, blob)
            if round_:
                took[side].append(seconds)
    return took


def extractions(apis: dict[str, httpx.Client], url: str, repeat: int) -> dict[str, list[float]]:
    took: dict[str, list[float]] = {store: [] for store in STORES}
    for store in STORES:  # one uncounted job each: the first pod of a release pays cold caches
        extract(apis[store], url, MP3)
    for round_ in range(repeat):
        for store in STORES if round_ % 2 == 0 else STORES[::-1]:
            took[store].append(extract(apis[store], url, MP3)[1])
    return took


def rate(size: int, seconds: list[float]) -> float:
    return size / statistics.median(seconds) / MB


def ms(values: list[float], q: float) -> float:
    return pct(values, q) * 1000


def report(args: argparse.Namespace, r: dict[str, Any]) -> None:
    size, down, lat, up, ext, raw = r["size"], r["down"], r["lat"], r["up"], r["ext"], r["raw"]
    n = len(lat["status"])
    print(f"helm upgrade --install → rolled out: {', '.join(f'{s} {t:.1f} s' for s, t in r['helm'].items())}")
    print(f"object: {size / MB:.1f} MB (WAV of a {args.object_seconds} s source), repeat {args.repeat}")
    print()
    print("| measure | baseline | measured | ratio |")
    print("|---|---:|---:|---:|")
    api_rate, store_rate = rate(size, down["api"]), rate(size, down["store"])
    print(
        f"| download, MB/s (median of {args.repeat}) | store (presigned GET) {store_rate:.1f} "
        f"| API (streamed) {api_rate:.1f} | **{api_rate / store_rate:.2f}** (goal ≥ 0.8) |"
    )
    for q in (0.5, 0.99):
        print(
            f"| latency p{round(q * 100)}, ms (n={n}) | status 200 {ms(lat['status'], q):.1f} "
            f"| redirect 307 {ms(lat['redirect'], q):.1f} "
            f"| {pct(lat['redirect'], q) / pct(lat['status'], q):.2f} |"
        )
    direct_rate, streamed_rate = rate(size, up["direct"]), rate(size, up["streamed"])
    print(
        f"| upload, MB/s (median of {args.repeat}) | direct (ticket + PUT) {direct_rate:.1f} "
        f"| through the API (streamed) {streamed_rate:.1f} | {streamed_rate / direct_rate:.2f} |"
    )
    base = statistics.median(raw)
    for store in STORES:
        took = statistics.median(ext[store])
        print(
            f"| extraction, {args.seconds} s source → mp3 medium, s (median of {args.repeat}) "
            f"| raw ffmpeg {base:.2f} | {store} release {took:.2f} | {took / base:.2f} |"
        )
    s3, volume = statistics.median(ext["s3"]), statistics.median(ext["volume"])
    print(f"\nextraction s3 / volume (medians): {s3 / volume:.2f}")
    for store in STORES:
        print(f"  {store:<6} extraction runs: {', '.join(f'{t:.2f}' for t in ext[store])} s")
    print(f"  raw ffmpeg runs: {', '.join(f'{t:.2f}' for t in raw)} s")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=300, help="length of the extraction source")
    parser.add_argument("--repeat", type=int, default=3, help="counted runs of each transfer and extraction")
    parser.add_argument("--requests", type=int, default=50, help="requests of each kind for the latencies")
    parser.add_argument(
        "--object-seconds", type=int, default=1050, help="source of the large object (16-bit WAV, 192 kB/s)"
    )
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        work = Path(tmp)
        media = work / "media"
        media.mkdir()
        make_source(media / "five.mp4", args.seconds)
        make_source(media / "long.mp4", args.object_seconds)
        cluster = LocalCluster(work / "cluster", project_image=True).start()
        try:
            keys = release.DevSecrets.of(work)
            archive = images.project_image(cluster.bin_dir, REPO)
            tag = release.tag_image(cluster.bin_dir, cluster.workdir, archive)
            installed = {store: install(cluster, keys, tag, store) for store in STORES}
            results["helm"] = {store: took for store, (_, took) in installed.items()}
            server = MediaServer(media).start()
            apis = {
                store: httpx.Client(base_url=url, headers={"X-API-Key": keys.api_key}, timeout=TIMEOUT)
                for store, (url, _) in installed.items()
            }
            plain = httpx.Client(timeout=TIMEOUT)  # the store's side: no API key, the URL is the credential
            try:
                s3 = apis["s3"]
                job, _ = extract(s3, f"{server.url}/long.mp4", {"format": "wav"})
                size = s3.get(f"/v1/status/{job}").json()["data"]["outputFile"]["size"]
                results["size"] = size
                results["down"] = downloads(s3, plain, job, size, args.repeat)
                results["lat"] = latencies(s3, job, args.requests)
                blob = plain.get(presigned(s3, job)).content
                if len(blob) != size:
                    raise SystemExit(f"the object read back: {len(blob)} bytes, expected {size}")
                results["up"] = uploads(s3, plain, blob, args.repeat)
                del blob
                results["raw"] = [raw_ffmpeg(media / "five.mp4", work) for _ in range(args.repeat)]
                results["ext"] = extractions(apis, f"{server.url}/five.mp4", args.repeat)
            finally:
                plain.close()
                for api in apis.values():
                    api.close()
                server.stop()
        finally:
            cluster.stop()
    report(args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
