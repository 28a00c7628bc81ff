"""Worker benchmark: a 5-minute video through ``python -m audio_extract_worker`` against raw ffmpeg.

For every format and tier, in the same run and alternating which goes first:
- the worker end to end (process start, probe, ffmpeg, output probe, atomic copy into the store);
- raw ``ffmpeg`` with exactly the argv the worker runs (``command.ffmpeg_args``).
Goal: worker ≤ 1.05 x ffmpeg + 0.5 s.

Then the copy path (AAC in MP4 → .aac, ``transcoded: false``) against re-encoding the same file
(goal ≥ 20x faster), and normalize (ebur128 pass + encode) against a plain encode (goal ≤ 2x).

The matrix source carries AC-3 audio so that no format takes the copy path; the copy source
carries AAC 192k. Video is a small MPEG-4 Part 2 stream, demuxed and dropped.

    .venv/bin/python bench/bench_worker.py [--seconds 300] [--repeat 1] [--write-docs]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / p) for p in ("common", "worker")]

from audio_extract_common.formats import Format, Quality  # noqa: E402
from audio_extract_worker.command import OutputSpec, Paths, ffmpeg_args  # noqa: E402
from audio_extract_worker.probe import probe  # noqa: E402

JOB_ID = "job_00000000000000b1"
BATCH_ID = "batch_00000000000000b0"
UPLOAD = "upl_00000000000000b1"


def make_source(path: Path, seconds: int, audio: list[str]) -> None:
    if path.exists():
        return
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
            f"anoisesrc=c=pink:a=0.1:r=48000:d={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"sine=f=440:r=48000:d={seconds}",
            "-filter_complex",
            "[1][2]amix=inputs=2,aformat=channel_layouts=stereo[a]",
            "-map",
            "0:v",
            "-map",
            "[a]",
            "-c:v",
            "mpeg4",
            "-q:v",
            "10",
            *audio,
            str(path),
        ],
        check=True,
    )


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.store = work / "store"
        self.scratch = work / "scratch"
        (self.store / "uploads").mkdir(parents=True, exist_ok=True)
        self.scratch.mkdir(exist_ok=True)

    def use_source(self, source: Path) -> Path:
        target = self.store / "uploads" / UPLOAD
        if target.exists() or target.is_symlink():
            target.unlink()
        os.link(source, target)
        return target

    def worker(self, output: dict) -> tuple[float, dict]:
        spec = {
            "jobId": JOB_ID,
            "batchId": BATCH_ID,
            "source": {"type": "upload", "file": UPLOAD},
            "output": output,
        }
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AUDIO_EXTRACT_WORKER_")},
            "AUDIO_EXTRACT_WORKER_JOB": json.dumps(spec),
            "AUDIO_EXTRACT_WORKER_STORE_ROOT": str(self.store),
            "AUDIO_EXTRACT_WORKER_SCRATCH_DIR": str(self.scratch),
            "AUDIO_EXTRACT_WORKER_RESULT_PATH": str(self.work / "result.json"),
        }
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "audio_extract_worker"], env=env, capture_output=True)
        elapsed = time.perf_counter() - started
        result = json.loads((self.work / "result.json").read_text())
        if proc.returncode != 0 or "output" not in result:
            raise RuntimeError(f"worker failed: {result} {proc.stderr.decode()[-500:]}")
        return elapsed, result["output"]

    def raw(self, source: Path, output: dict) -> float:
        spec = OutputSpec(
            Format(output["format"]), Quality(output.get("quality", "medium")), output.get("bitrate")
        )
        facts = probe(source)
        out = self.scratch / f"raw.{spec.format.value}"
        args = ffmpeg_args(spec, facts, Paths(source.resolve(), out.resolve()))
        started = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elapsed = time.perf_counter() - started
        out.unlink()
        return elapsed


def best(values: list[float]) -> float:
    return min(values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell; the fastest counts")
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "audio-extract-bench-worker"
    )
    parser.add_argument(
        "--write-docs", action="store_true", help="replace the Worker section of docs/benchmarks.md"
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    matrix_src = args.work / f"ac3-{args.seconds}s.mp4"
    copy_src = args.work / f"aac-{args.seconds}s.mp4"
    make_source(matrix_src, args.seconds, ["-c:a", "ac3", "-b:a", "192k"])
    make_source(copy_src, args.seconds, ["-c:a", "aac", "-b:a", "192k"])
    bench = Bench(args.work)

    lines = [
        f"Source: {args.seconds} s video (160x120 MPEG-4 + 48 kHz stereo AC-3 192k in MP4, "
        f"{matrix_src.stat().st_size / 1e6:.1f} MB); {args.repeat} run(s) per cell, fastest kept; "
        f"{platform.machine()}, {os.cpu_count()} CPUs shared with other work; ffmpeg "
        f"{subprocess.run(['ffmpeg', '-version'], capture_output=True, text=True).stdout.split()[2]}.",
        "",
        "| format | tier | worker s | raw ffmpeg s | ratio | overhead s | x realtime | goal (≤1.05x+0.5 s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    source = bench.use_source(matrix_src)
    worst = 0.0
    for fmt in Format:
        for quality in Quality:
            output = {"format": fmt.value, "quality": quality.value}
            w, r = [], []
            for i in range(args.repeat):
                order = [("w", output), ("r", output)] if i % 2 == 0 else [("r", output), ("w", output)]
                for kind, out in order:
                    if kind == "w":
                        elapsed, result = bench.worker(out)
                        assert result["transcoded"], result
                        w.append(elapsed)
                    else:
                        r.append(bench.raw(source, out))
            ws, rs = best(w), best(r)
            ok = ws <= 1.05 * rs + 0.5
            worst = max(worst, ws - 1.05 * rs)
            lines.append(
                f"| {fmt.value} | {quality.value} | {ws:.2f} | {rs:.2f} | {ws / rs:.2f} "
                f"| {ws - rs:+.2f} | {args.seconds / ws:.0f}x | {'yes' if ok else 'NO'} |"
            )
            print(lines[-1], flush=True)

    # copy path: AAC 192k in MP4 → .aac medium (copy) vs the same through an explicit bitrate (encode)
    copy_path = bench.use_source(copy_src)
    copy_t, encode_t, norm_t, plain_t, raw_copy, raw_encode = [], [], [], [], [], []
    for _ in range(args.repeat):
        raw_copy.append(bench.raw(copy_path, {"format": "aac", "quality": "medium"}))
        raw_encode.append(bench.raw(copy_path, {"format": "aac", "bitrate": "128k"}))
        t, result = bench.worker({"format": "aac", "quality": "medium"})
        assert result["transcoded"] is False, result
        copy_t.append(t)
        t, result = bench.worker({"format": "aac", "bitrate": "128k"})
        assert result["transcoded"] is True
        encode_t.append(t)
    bench.use_source(matrix_src)
    for _ in range(args.repeat):
        norm_t.append(bench.worker({"format": "mp3", "normalize": True})[0])
        plain_t.append(bench.worker({"format": "mp3"})[0])
    c, e, n, p = best(copy_t), best(encode_t), best(norm_t), best(plain_t)
    rc, re_ = best(raw_copy), best(raw_encode)
    lines += [
        "",
        "| comparison | time s | against s | factor | goal |",
        "|---|---|---|---|---|",
        f"| copy path (AAC in MP4 → .aac, `transcoded: false`) vs re-encode aac 128k, same file | {c:.2f} | "
        f"{e:.2f} | {e / c:.1f}x faster | ≥ 20x |",
        f"| the same two ffmpeg command lines alone (worker start-up, probe and store excluded) | {rc:.2f} | "
        f"{re_:.2f} | {re_ / rc:.1f}x faster | ≥ 20x |",
        f"| normalize (ebur128 pass + linear loudnorm) vs plain encode, mp3 medium | {n:.2f} | {p:.2f} | "
        f"{n / p:.2f}x | ≤ 2x |",
    ]
    print("\n".join(lines[-6:]))
    print(f"\nworst worker excess over 1.05 x ffmpeg: {worst:+.2f} s")
    if args.write_docs:
        write_docs(lines)


def write_docs(lines: list[str]) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = (
        "## Worker\n\n`bench/bench_worker.py` (reproduce: "
        "`.venv/bin/python bench/bench_worker.py`).\n\n" + "\n".join(lines) + "\n"
    )
    if "## Worker\n" in text:
        head, _, rest = text.partition("## Worker\n")
        tail = rest[rest.find("\n## ") :] if "\n## " in rest else ""
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


if __name__ == "__main__":
    main()
