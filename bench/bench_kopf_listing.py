"""Peak memory of kopf's start-up listing of many retained batches, without a cluster.

kopf's own queueing (``queueing.watcher`` and its per-object workers, as installed) fed by a fake
watch stream: ``--batches`` finished 10-job batches, parsed from JSON one by one (as a real
listing delivers them), in pages of ``--page`` with ``--fetch`` seconds per page request; each
event's processing takes ``--work`` seconds. kopf gives every listed object a worker at once, and
an idle worker keeps its last body for ``--idle`` seconds (``settings.queueing.idle_timeout``), so
how many bodies are alive together, hence the peak RSS (VmHWM), depends on it. This measures only
that part of the operator; ``bench_operator.py --retained`` measures the whole process.

    .venv/bin/python bench/bench_kopf_listing.py --idle 5.0     # kopf's default
    .venv/bin/python bench/bench_kopf_listing.py --idle 0.5     # the operator's setting
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / p) for p in ("common", "operator")]

import kopf  # noqa: E402
from kopf._cogs.clients import watching  # noqa: E402
from kopf._cogs.structs import references  # noqa: E402
from kopf._core.reactor import queueing  # noqa: E402

from audio_extract_common import ids  # noqa: E402


def proc_status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def batch_json(i: int) -> str:
    """A finished batch as the API server lists it (about 10 KB of JSON)."""
    key = f"{i:014x}"
    jobs = []
    for j in range(10):
        job_id = ids.job_id(key, j)
        jobs.append(
            {
                "index": j,
                "jobId": job_id,
                "jobName": ids.job_object_name(job_id),
                "status": "completed",
                "progress": 100,
                "createdAt": "2026-01-21T12:00:00Z",
                "startedAt": "2026-01-21T12:00:01Z",
                "completedAt": "2026-01-21T12:00:09Z",
                "expiresAt": "2026-01-22T12:00:09Z",
                "inputFile": {"name": "talk.mp4", "size": 123456, "duration": 61.5, "format": "mov,mp4"},
                "outputFile": {
                    "filename": "talk.mp3",
                    "path": f"{job_id}/talk.mp3",
                    "size": 98765,
                    "duration": 61.5,
                    "format": "mp3",
                    "bitrate": "192k",
                },
            }
        )
    return json.dumps(
        {
            "apiVersion": "audioextract.io/v1",
            "kind": "ExtractionBatch",
            "metadata": {
                "name": ids.batch_object_name(key),
                "namespace": "ns",
                "uid": f"uid-{i}",
                "resourceVersion": str(1000 + i),
                "labels": {ids.KEY_LABEL: key},
                "annotations": {"audioextract.io/last-handled-configuration": "x" * 600},
            },
            "spec": {
                "jobs": [
                    {
                        "source": {"type": "url", "url": f"https://cdn.example.org/{i}/{j}.mp4"},
                        "output": {"format": "mp3"},
                    }
                    for j in range(10)
                ]
            },
            "status": {
                "batchId": ids.batch_id(key),
                "phase": "Succeeded",
                "jobs": jobs,
                "completedAt": "2026-01-21T12:00:09Z",
            },
        }
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async def fake_watch(**_: Any) -> Any:
        for start in range(0, args.batches, args.page):
            await asyncio.sleep(args.fetch)
            for i in range(start, min(args.batches, start + args.page)):
                yield {"type": None, "object": json.loads(batch_json(i))}
        yield watching.Bookmark.LISTED
        await asyncio.sleep(3600)

    processed = 0

    async def processor(**_: Any) -> None:
        nonlocal processed
        await asyncio.sleep(args.work)
        processed += 1

    settings = kopf.OperatorSettings()
    settings.queueing.idle_timeout = args.idle
    queueing.watching.infinite_watch = fake_watch  # type: ignore[assignment]
    resource = references.Resource(
        group="audioextract.io", version="v1", plural="extractionbatches", namespaced=True
    )
    base = proc_status_mib("VmRSS")
    task = asyncio.create_task(
        queueing.watcher(namespace="ns", settings=settings, resource=resource, processor=processor)
    )  # type: ignore[arg-type]
    t0 = time.monotonic()
    while processed < args.batches:
        await asyncio.sleep(0.05)
    took = time.monotonic() - t0
    await asyncio.sleep(args.idle + 1)
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    return {
        "batches": args.batches,
        "idle_timeout": args.idle,
        "seconds": round(took, 1),
        "rss_mib_before": round(base, 1),
        "peak_rss_mib": round(proc_status_mib("VmHWM"), 1),
        "rss_mib_after": round(proc_status_mib("VmRSS"), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=20000)
    parser.add_argument("--idle", type=float, default=0.5, help="kopf's queueing.idle_timeout, seconds")
    parser.add_argument("--page", type=int, default=500, help="objects per listing page")
    parser.add_argument("--fetch", type=float, default=0.05, help="seconds per page request")
    parser.add_argument("--work", type=float, default=0.0005, help="seconds of handling per event")
    print(json.dumps(asyncio.run(run(parser.parse_args()))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
