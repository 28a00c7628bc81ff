"""kopf's diff base (the essence of an object it compares at every event) built by kopf's own
storage and by the operator's (``audio_extract_operator.diffbase``), same bodies, same run: a
10-job batch with a finished batch's status and three ``managedFields`` entries, and one of its
Jobs (the operator builds none for a Job: kopf never compares it).

    .venv/bin/python bench/bench_diffbase.py [--repeat 2000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / p) for p in ("common", "operator", "tests", "tests/component/operator")]

import kopf  # noqa: E402
from operator_fakeapi import terminal_status  # noqa: E402
from unit.operator.test_operator_diffbase import PREFIX, batch, job, storage  # noqa: E402

from audio_extract_common import ids  # noqa: E402


def per_build_us(storage: Any, body: kopf.Body, repeat: int) -> float:
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(repeat):
            storage.build(body=body, extra_fields=[("spec",)])
        best = min(best, time.perf_counter() - t)
    return best / repeat * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    out = {}
    finished = batch()
    finished["status"] = terminal_status(ids.derived_batch_key(finished))
    for name, body in (("batch", finished), ("job", job())):
        kopfs = per_build_us(kopf.AnnotationsDiffBaseStorage(prefix=PREFIX), kopf.Body(body), args.repeat)
        ours = per_build_us(storage(), kopf.Body(body), args.repeat)
        out[name] = {
            "body_bytes": len(json.dumps(body)),
            "kopf_us": round(kopfs, 1),
            "operator_us": round(ours, 1),
            "ratio": round(kopfs / ours, 1) if name == "batch" else None,
        }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
