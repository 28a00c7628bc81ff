"""The operator's admission choice with many Jobs queued, without a cluster.

A registry of ``--queued`` suspended Jobs (``--jobs`` per batch, batches of every priority, seen
in a shuffled order, each batch's entries in status) and ``--free`` slots to fill, as in a long
burst where each ending job frees a slot and wakes the admission loop. Two ways to choose, timed
in the same run on the same registry:

- **every queued Job sorted**: all of them as candidates, ordered by ``to_admit`` (what each
  pass did before the registry kept its Jobs in admission order);
- **the first ones read**: ``Registry.queued(free)``, the registry's Jobs kept in admission order
  as they are seen, then ``to_admit`` over those few (what a pass does now).

Also timed: observing a Job (parsed, and sorted into the order as it comes).

    .venv/bin/python bench/bench_admission.py [--queued 18000] [--free 4] [--passes 50]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / p) for p in ("common", "operator")]

from audio_extract_common.batch_spec import BatchSpec  # noqa: E402
from audio_extract_common.batch_status import BatchStatus  # noqa: E402
from audio_extract_operator.admission import to_admit  # noqa: E402
from audio_extract_operator.jobs import build_job  # noqa: E402
from audio_extract_operator.reconcile import initial_entries  # noqa: E402
from audio_extract_operator.registry import Registry  # noqa: E402
from audio_extract_operator.settings import Settings  # noqa: E402

JOB = {"source": {"type": "url", "url": "http://example.org/a.mp4"}, "output": {"format": "wav"}}
PRIORITIES = ("low", "normal", "high")


def batches(count: int, jobs: int) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        b: dict[str, Any] = {
            "metadata": {
                "name": f"batch-{i}",
                "namespace": "ns",
                "uid": f"{i:08x}-2222-3333-4444-555555555555",
                "creationTimestamp": f"2026-01-21T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
                "resourceVersion": "1",
            },
            "spec": {"jobs": [{**JOB, "options": {"priority": PRIORITIES[i % 3]}}] * jobs},
        }
        status = initial_entries(b, BatchSpec.model_validate(b["spec"]), BatchStatus())
        assert status is not None
        b["status"] = status.model_dump(mode="json", exclude_none=True)
        out.append(b)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings()
    bodies = batches(args.queued // args.jobs, args.jobs)
    jobs = []
    for b in bodies:
        for index in range(args.jobs):
            job = build_job(b, index, settings)
            job["metadata"].update(uid=f"{b['metadata']['uid']}-{index}", resourceVersion="2")
            jobs.append(job)
    random.Random(1).shuffle(jobs)
    reg = Registry()
    for b in bodies:
        reg.observe_batch(b)
    t = time.perf_counter()
    for job in jobs:
        reg.observe_job(job)
    observe_s = time.perf_counter() - t

    def sorted_pass() -> list[Any]:
        return to_admit(reg.queued(), 0, args.free)

    def first_pass() -> list[Any]:
        return to_admit(reg.queued(args.free), 0, args.free)

    assert sorted_pass() == first_pass(), "both ways must choose the same Jobs"
    timings: dict[str, list[float]] = {"sorted": [], "first": []}
    for _ in range(args.passes):
        for name, choose in (("sorted", sorted_pass), ("first", first_pass)):
            t = time.perf_counter()
            choose()
            timings[name].append(time.perf_counter() - t)
    sorted_ms = statistics.median(timings["sorted"]) * 1000
    first_ms = statistics.median(timings["first"]) * 1000
    return {
        "queued": len(jobs),
        "free": args.free,
        "passes": args.passes,
        "pass_every_queued_job_sorted_ms": round(sorted_ms, 2),
        "pass_first_ones_read_ms": round(first_ms, 3),
        "ratio": round(sorted_ms / first_ms, 1),
        "observe_us_per_job": round(observe_s / len(jobs) * 1e6, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queued", type=int, default=18000)
    parser.add_argument("--jobs", type=int, default=10, help="jobs per batch")
    parser.add_argument("--free", type=int, default=4, help="slots free at each pass")
    parser.add_argument("--passes", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(run(args), indent=2), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
