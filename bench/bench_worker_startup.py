"""Worker start-up benchmark: how long ``python -m audio_extract_worker`` takes to reach its first
ffprobe/ffmpeg call, and what that costs the stream-copy fast path end to end, against the
workers of earlier revisions and raw ffmpeg, all in one run on the same file.

An earlier worker is ``git archive <rev>``'s ``common`` and ``worker`` packages, extracted into a
temporary directory and put first on ``PYTHONPATH`` (the same venv and interpreter); the current
one is this checkout's, the same way. Each gets one uncounted run first (its bytecode written).

1. Start-up: process start (just before ``Popen``) → the first exec of ffprobe or ffmpeg. A
   wrapper first on ``PATH`` logs ``$EPOCHREALTIME`` and execs the real binary; the wrapper's own
   start (calibrated in the same run: ``Popen`` → its log line) is subtracted. The job is the
   copy job, from the volume store; two environments: bare (no progress endpoint, text logs) and
   as the operator's Jobs run it (a progress endpoint, served here on loopback, JSON logs, tenant).
   ``python -c pass`` in the same environment is the floor. The copy job's later execs split its
   time into start-up, the probe (ffprobe → ffmpeg) and the rest (ffmpeg → exit).
2. End to end (no wrapper): the copy fast path (AAC in MP4 → .aac medium, ``transcoded: false``)
   against a re-encode (→ mp3 medium) of the same file through each worker (process start → exit,
   result checked), and the two raw ffmpeg command lines the worker runs (``command.ffmpeg_args``).
3. With ``--stdlib-bytecode``: start-up of this checkout's worker as the operator runs it on a copy
   of this interpreter whose standard library has no bytecode (as the python image ships it), and
   on the same copy compiled by the Dockerfile's ``compileall``; ``PYTHONDONTWRITEBYTECODE=1``.

Every cell is the median of ``--repeat`` runs (start-up cells also give the fastest), the
variants taking turns to go first.

    .venv/bin/python bench/bench_worker_startup.py [--seconds 300] [--repeat 15] [--baseline REV ...]
        [--stdlib-bytecode]

Not part of the tests; prints markdown tables, figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench_worker import make_source

ROOT = Path(__file__).resolve().parent.parent

from audio_extract_common.formats import Format, Quality  # noqa: E402
from audio_extract_worker.command import OutputSpec, Paths, ffmpeg_args  # noqa: E402
from audio_extract_worker.probe import probe  # noqa: E402

JOB_ID = "job_00000000000000c1"
BATCH_ID = "batch_00000000000000c0"
UPLOAD = "upl_00000000000000c1"
BASELINES = ("d7a0873", "64510a7")
"""Before the address guard was split by what each part needs, and before the worker's start-up
was cut (pydantic-settings, progress over httpx, the interpreter's teardown)."""

COPY = {"format": "aac", "quality": "medium"}
ENCODE = {"format": "mp3", "quality": "medium"}

COMPILE_SKIP = "/(idlelib|tkinter|turtledemo|lib2to3|ensurepip)/"
"""The Dockerfile's ``compileall -x``."""

WRAPPER = """#!/bin/bash
printf '%s {name}\\n' "$EPOCHREALTIME" >> "$STARTUP_BENCH_LOG"
exec {real} "$@"
"""


def cell_ms(values: list[float]) -> str:
    """Median, and the fastest run in brackets (the cost on an idle machine)."""
    return f"{statistics.median(values) * 1000:.0f} ({min(values) * 1000:.0f})"


@contextlib.contextmanager
def packages_at(rev: str, work: Path) -> Iterator[Path]:
    """A directory holding ``common`` and ``worker`` as they were at ``rev``."""
    target = Path(tempfile.mkdtemp(prefix=f"worker-{rev}-", dir=work))
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "common", "worker"],
            check=True,
            capture_output=True,
        ).stdout
        tar = target / "src.tar"
        tar.write_bytes(archive)
        with tarfile.open(tar) as t:
            t.extractall(target, filter="data")
        yield target
    finally:
        shutil.rmtree(target, ignore_errors=True)


class ProgressSink:
    """The operator's progress endpoint, as far as the worker can tell: 204 to every POST."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/progress"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Interpreter:
    """This interpreter with its standard library copied without bytecode, as the python image
    ships it; ``compiled``: then compiled by the Dockerfile's ``compileall`` command. The venv's
    packages (compiled by pip) stay where they are; nothing writes bytecode at run time."""

    def __init__(self, target: Path, compiled: bool) -> None:
        stdlib = Path(sysconfig.get_path("stdlib"))
        (target / "bin").mkdir(parents=True)
        self.executable = target / "bin" / Path(os.path.realpath(sys.executable)).name
        shutil.copy2(os.path.realpath(sys.executable), self.executable)
        self.env = {"PYTHONDONTWRITEBYTECODE": "1"}
        if sysconfig.get_config_var("Py_ENABLE_SHARED"):
            (target / "shared").mkdir()
            library = Path(sysconfig.get_config_var("LIBDIR")) / sysconfig.get_config_var("INSTSONAME")
            shutil.copy2(library, target / "shared" / library.name)
            self.env["LD_LIBRARY_PATH"] = str(target / "shared")
        skip = (
            "__pycache__",
            "site-packages",
            "test",
            "tests",
            "idlelib",
            "tkinter",
            "turtledemo",
            "lib2to3",
        )
        shutil.copytree(stdlib, target / "lib" / stdlib.name, ignore=shutil.ignore_patterns(*skip))
        if compiled:
            subprocess.run(
                [
                    str(self.executable),
                    "-m",
                    "compileall",
                    "-q",
                    "-j",
                    "0",
                    "-x",
                    COMPILE_SKIP,
                    target / "lib",
                ],
                env={**os.environ, **self.env},
                check=True,
                stdout=subprocess.DEVNULL,
            )


class Runner:
    def __init__(self, work: Path, source: Path, sink: ProgressSink) -> None:
        self.work = work
        self.store = work / "store"
        self.scratch = work / "scratch"
        (self.store / "uploads").mkdir(parents=True, exist_ok=True)
        self.scratch.mkdir(exist_ok=True)
        target = self.store / "uploads" / UPLOAD
        target.unlink(missing_ok=True)
        os.link(source, target)
        self.source = target
        self.sink = sink
        self.bin = work / "bin"
        self.bin.mkdir(exist_ok=True)
        for name in ("ffmpeg", "ffprobe"):
            real = shutil.which(name)
            assert real, f"{name} is not on PATH"
            wrapper = self.bin / name
            wrapper.write_text(WRAPPER.format(name=name, real=real))
            wrapper.chmod(0o755)
        self.log = work / "exec.log"

    def env(self, packages: Path, operator: bool, wrapped: bool) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDIO_EXTRACT_WORKER_", "PYTHON"))}
        env["PYTHONPATH"] = os.pathsep.join(str(packages / p) for p in ("common", "worker"))
        env.update(
            {
                "AUDIO_EXTRACT_WORKER_STORE_ROOT": str(self.store),
                "AUDIO_EXTRACT_WORKER_SCRATCH_DIR": str(self.scratch),
                "AUDIO_EXTRACT_WORKER_RESULT_PATH": str(self.work / "result.json"),
            }
        )
        if operator:
            env.update(
                {
                    "AUDIO_EXTRACT_WORKER_PROGRESS_URL": self.sink.url,
                    "AUDIO_EXTRACT_WORKER_PROGRESS_TOKEN": "bench-token",
                    "AUDIO_EXTRACT_WORKER_LOG_FORMAT": "json",
                    "AUDIO_EXTRACT_WORKER_TENANT": "bench",
                }
            )
        if wrapped:
            env["PATH"] = f"{self.bin}{os.pathsep}{env['PATH']}"
            env["STARTUP_BENCH_LOG"] = str(self.log)
        return env

    def execs(self, started: float) -> list[float]:
        """Seconds from ``started`` to each exec the wrapper logged, in order."""
        return [float(line.split()[0]) - started for line in self.log.read_text().splitlines()]

    def worker(
        self,
        packages: Path,
        output: dict,
        operator: bool = False,
        wrapped: bool = False,
        python: Interpreter | None = None,
    ) -> tuple[float, list[float]]:
        """Process start → exit, and → each ffprobe/ffmpeg exec (``wrapped``; else none)."""
        spec = {
            "jobId": JOB_ID,
            "batchId": BATCH_ID,
            "source": {"type": "upload", "file": UPLOAD},
            "output": output,
        }
        env = self.env(packages, operator, wrapped)
        env["AUDIO_EXTRACT_WORKER_JOB"] = json.dumps(spec)
        executable = sys.executable
        if python is not None:
            executable = str(python.executable)
            env.update(python.env)
            env["PYTHONPATH"] += os.pathsep + sysconfig.get_path("purelib")
        self.log.unlink(missing_ok=True)
        (self.work / "result.json").unlink(missing_ok=True)
        started = time.time()
        proc = subprocess.run(
            [executable, "-m", "audio_extract_worker"], env=env, cwd=self.work, capture_output=True
        )
        elapsed = time.time() - started
        result = json.loads((self.work / "result.json").read_text())
        if proc.returncode != 0 or "output" not in result:
            raise RuntimeError(f"worker failed: {result} {proc.stderr.decode()[-500:]}")
        assert result["output"]["transcoded"] is (output is not COPY), result
        shutil.rmtree(self.store / JOB_ID)
        return elapsed, self.execs(started) if wrapped else []

    def python_floor(self, packages: Path) -> float:
        env = self.env(packages, False, False)
        started = time.time()
        subprocess.run([sys.executable, "-c", "pass"], env=env, cwd=self.work, check=True)
        return time.time() - started

    def wrapper_start(self) -> float:
        """How long the wrapper itself takes to log: subtracted from every start-up figure."""
        env = self.env(ROOT, False, True)
        self.log.unlink(missing_ok=True)
        started = time.time()
        subprocess.run(
            [str(self.bin / "ffprobe"), "-version"], env=env, check=True, stdout=subprocess.DEVNULL
        )
        return self.execs(started)[0]

    def raw(self, output: dict) -> float:
        spec = OutputSpec(Format(output["format"]), Quality(output["quality"]))
        out = self.scratch / f"raw.{spec.format.value}"
        args = ffmpeg_args(spec, probe(self.source), Paths(self.source.resolve(), out.resolve()))
        started = time.time()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elapsed = time.time() - started
        out.unlink()
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=300, help="length of the AAC-in-MP4 source")
    parser.add_argument("--repeat", type=int, default=15, help="runs per cell; the median counts")
    parser.add_argument(
        "--baseline", action="append", help=f"a revision to compare with (repeatable; default {BASELINES})"
    )
    parser.add_argument(
        "--stdlib-bytecode",
        action="store_true",
        help="also: this checkout's start-up with a standard library without bytecode and compiled",
    )
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "audio-extract-bench-startup"
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    source = args.work / f"aac-{args.seconds}s.mp4"
    make_source(source, args.seconds, ["-c:a", "aac", "-b:a", "192k"])
    sink = ProgressSink()
    runner = Runner(args.work, source, sink)
    revs = [
        subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", rev], check=True, capture_output=True, text=True
        ).stdout.strip()
        for rev in args.baseline or BASELINES
    ]
    try:
        with contextlib.ExitStack() as stack:
            variants = {f"`{rev}`": stack.enter_context(packages_at(rev, args.work)) for rev in revs}
            variants["this checkout"] = ROOT
            run(runner, variants, args, source)
        if args.stdlib_bytecode:
            stdlib_bytecode(runner, args)
    finally:
        sink.close()


def stdlib_bytecode(runner: Runner, args: argparse.Namespace) -> None:
    """Start-up of this checkout's worker as the operator runs it, on a standard library without
    bytecode (the python image as shipped) and on the same one compiled as the Dockerfile does."""
    target = Path(tempfile.mkdtemp(prefix="interpreters-", dir=args.work))
    try:
        pythons = {
            "without bytecode (the python image as shipped)": Interpreter(target / "plain", compiled=False),
            "compiled as the Dockerfile does": Interpreter(target / "compiled", compiled=True),
        }
        for python in pythons.values():
            runner.worker(ROOT, COPY, operator=True, wrapped=True, python=python)
        wrap = statistics.median(runner.wrapper_start() for _ in range(args.repeat))
        took: dict[str, list[float]] = {name: [] for name in pythons}
        for i in range(args.repeat):
            for name in list(pythons)[:: 1 if i % 2 == 0 else -1]:
                first = runner.worker(ROOT, COPY, operator=True, wrapped=True, python=pythons[name])[1]
                took[name].append(first[0] - wrap)
        print()
        print(
            "| standard library, `PYTHONDONTWRITEBYTECODE=1` | start → first ffprobe, ms: median (fastest) |"
        )
        print("|---|---|")
        for name, values in took.items():
            print(f"| {name} | {cell_ms(values)} |")
    finally:
        shutil.rmtree(target, ignore_errors=True)


def run(runner: Runner, variants: dict[str, Path], args: argparse.Namespace, source: Path) -> None:
    names = list(variants)
    load_before = os.getloadavg()[0]
    for packages in variants.values():  # bytecode written, caches warm
        runner.worker(packages, COPY, operator=True, wrapped=True)
    wrap = statistics.median(runner.wrapper_start() for _ in range(args.repeat))
    floor: list[float] = []
    start: dict[tuple[str, bool], list[float]] = {(n, op): [] for n in names for op in (False, True)}
    phases: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
    e2e: dict[tuple[str, str], list[float]] = {(n, o): [] for n in names for o in ("copy", "encode")}
    raw: dict[str, list[float]] = {"copy": [], "encode": []}
    for i in range(args.repeat):
        order = names[i % len(names) :] + names[: i % len(names)]
        floor.append(runner.python_floor(ROOT))
        for n in order:
            for op in (False, True):
                elapsed, (probe_at, ffmpeg_at) = runner.worker(variants[n], COPY, operator=op, wrapped=True)
                start[n, op].append(probe_at - wrap)
                if op:
                    phases[n].append((probe_at - wrap, ffmpeg_at - probe_at, elapsed - ffmpeg_at))
        for n in order:
            e2e[n, "copy"].append(runner.worker(variants[n], COPY)[0])
            e2e[n, "encode"].append(runner.worker(variants[n], ENCODE)[0])
        raw["copy"].append(runner.raw(COPY))
        raw["encode"].append(runner.raw(ENCODE))
        print(f"round {i + 1}/{args.repeat}", file=sys.stderr, flush=True)

    ffmpeg_version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split()[2]
    print(
        f"Source: {args.seconds} s video (160x120 MPEG-4 + 48 kHz stereo AAC 192k in MP4, "
        f"{source.stat().st_size / 1e6:.1f} MB), from the volume store; median of {args.repeat} runs per "
        f"cell; Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, load "
        f"average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after; ffmpeg {ffmpeg_version}; "
        f"wrapper start {wrap * 1000:.1f} ms (subtracted).\n"
    )
    first = names[0]
    print(
        "| worker | start → first ffprobe, bare: ms, median (fastest) | as the operator runs it "
        "(progress endpoint, JSON logs) | operator-like, against the first |"
    )
    print("|---|---|---|---|")
    for n in names:
        ratio = statistics.median(start[n, True]) / statistics.median(start[first, True])
        print(f"| {n} | {cell_ms(start[n, False])} | {cell_ms(start[n, True])} | {ratio:.2f} |")
    print(f"| `python -c pass` (the floor) | {cell_ms(floor)} | | |")
    print()
    print(
        "| copy job as the operator runs it, ms (median) | start → ffprobe | ffprobe → ffmpeg (the probe) "
        "| ffmpeg → exit (copy, fsync, result, exit) | total |"
    )
    print("|---|---|---|---|---|")
    for n in names:
        cells = [statistics.median(p[i] for p in phases[n]) * 1000 for i in range(3)]
        total = statistics.median(sum(p) for p in phases[n]) * 1000
        print(f"| {n} | {' | '.join(f'{c:.0f}' for c in cells)} | {total:.0f} |")
    print()
    print("| end to end, same file | copy s | re-encode (mp3 medium) s | re-encode / copy |")
    print("|---|---|---|---|")
    for n in names:
        c, e = statistics.median(e2e[n, "copy"]), statistics.median(e2e[n, "encode"])
        print(f"| worker {n} | {c:.3f} | {e:.2f} | {e / c:.1f}x |")
    c, e = statistics.median(raw["copy"]), statistics.median(raw["encode"])
    print(f"| raw ffmpeg, the worker's two command lines | {c:.3f} | {e:.2f} | {e / c:.1f}x |")


if __name__ == "__main__":
    main()
