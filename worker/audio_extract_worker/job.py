"""One job, step by step: fetch ▸ probe ▸ extract ▸ store. Returns the WorkerResult."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from audio_extract_common.formats import Format
from audio_extract_common.resource import ErrorCode, InputFile, OutputFile, Step
from audio_extract_common.results import WorkerResult
from audio_extract_common.store import Store, output_key, upload_key

from .command import InvalidOutput, OutputSpec, Paths, can_copy, extension, ffmpeg_args, measure_args
from .errors import JobFailure
from .ffmpeg_run import FfmpegRun, run_ffmpeg
from .loudness import MAX_CORRECTIONS, Loudness, gain_correction, is_linear, normalize_filter, parse_ebur128
from .probe import ProbeFacts, probe
from .progress import ProgressReporter
from .settings import WorkerSettings
from .spec import WorkerJob, default_filename

log = logging.getLogger(__name__)

MEASURE_SHARE = 30
"""Percent of the extract step's progress bar given to the loudness measuring pass."""


def run_job(job: WorkerJob, settings: WorkerSettings, store: Store,
            reporter: ProgressReporter) -> WorkerResult:
    """Run ``job``; every failure ends as a result with a contract error code."""
    input_file: InputFile | None = None
    settings.scratch_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{job.jobId}-", dir=settings.scratch_dir)).resolve()
    try:
        spec = _validated(job)  # bad combinations end here, before any download or ffmpeg run
        source, name = _acquire(job, settings, store, work, reporter)
        reporter.report(Step.analyzing_video, 0)
        facts = probe(source)
        input_file = InputFile(name=name, size=facts.size, duration=facts.duration, format=facts.format_name)
        reporter.report(Step.analyzing_video, 100, input_file=input_file)
        key = output_key(job.jobId, f"{default_filename(job)}.{extension(spec.format)}")
        # ffmpeg writes straight into the store next to the final name; renamed only on success
        with store.staged(key) as out:
            transcoded, seconds = _extract(spec, facts, Paths(source, out.resolve()), settings, reporter)
            reporter.report(Step.finalizing, 0)
            output = _describe(key, spec, out, transcoded, seconds)
        reporter.report(Step.finalizing, 100)
        return WorkerResult(output=output, inputFile=input_file)
    except JobFailure as failure:
        log.info("job %s failed: %s %s", job.jobId, failure.code, failure.message)
        return WorkerResult(error=failure.to_error(), inputFile=input_file, permanent=failure.permanent,
                            transient=failure.transient)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _validated(job: WorkerJob) -> OutputSpec:
    try:
        spec = OutputSpec.from_model(job.output)
        spec.validate()
    except InvalidOutput as e:
        raise JobFailure(ErrorCode.EXTRACTION_FAILED, f"invalid output settings: {e}") from None
    return spec


def _acquire(job: WorkerJob, settings: WorkerSettings, store: Store, work: Path,
             reporter: ProgressReporter) -> tuple[Path, str]:
    """The source as a local absolute path, and its display name."""
    reporter.report(Step.downloading_video, 0)
    if job.source.type == "upload":
        file_id = job.source.file or ""
        key = upload_key(file_id)
        size = store.size(key)
        if size is None:
            raise JobFailure(ErrorCode.DOWNLOAD_FAILED, f"upload {file_id} was not found in the store",
                             permanent=True)  # expired or deleted: it will not come back
        if size > settings.max_source_bytes:
            raise JobFailure(ErrorCode.SOURCE_TOO_LARGE,
                             f"the source is larger than the {settings.max_source_bytes:,}-byte limit")
        local = store.local_path(key)
        if local is None:  # a remote store: copy it into scratch first
            local = work / "source"
            with store.open(key) as src, open(local, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        reporter.report(Step.downloading_video, 100)
        return local.resolve(), file_id
    from . import fetch  # httpx and the address guard load only for URL sources

    dest = work / "source"
    limits = fetch.FetchLimits(settings.max_source_bytes, settings.connect_timeout, settings.read_timeout,
                               settings.max_redirects)

    def progress(done: int, total: int | None) -> None:
        if total:
            reporter.report(Step.downloading_video, 100 * done / total)

    fetched = fetch.download(job.source.url or "", dest, settings.allow, limits, progress)
    reporter.report(Step.downloading_video, 100)
    return dest, fetched.name


def _extract(spec: OutputSpec, facts: ProbeFacts, paths: Paths, settings: WorkerSettings,
             reporter: ProgressReporter) -> tuple[bool, float | None]:
    """Returns whether the audio was re-encoded, and the output's duration (ffmpeg's last out_time)."""
    reporter.report(Step.extracting_audio, 0)
    duration = facts.duration
    started = time.monotonic()

    def progress_in(low: float, high: float):  # type: ignore[no-untyped-def]
        def on_time(seconds: float) -> None:
            if duration:
                share = min(1.0, seconds / duration)
                pct = low + (high - low) * share
                eta = None
                elapsed = time.monotonic() - started
                if pct > 1:
                    eta = int(elapsed * (100 - pct) / pct)
                reporter.report(Step.extracting_audio, pct, eta)
        return on_time

    loudness = None
    correction = 0.0
    transcoded = not can_copy(spec, facts)
    start = 0.0
    if spec.normalize:
        loudness = _measure(facts, paths.source, None, settings, progress_in(0, MEASURE_SHARE))
        chosen = normalize_filter(loudness)
        rounds = 0
        while chosen and not is_linear(chosen) and rounds < MAX_CORRECTIONS:
            result = _measure(facts, paths.source, chosen, settings, lambda seconds: None)
            next_correction = gain_correction(correction, result)
            if next_correction is None:
                break
            correction, rounds = next_correction, rounds + 1
            chosen = normalize_filter(loudness, correction)
        start = MEASURE_SHARE
    run = run_ffmpeg(ffmpeg_args(spec, facts, paths, loudness, correction), settings.ffmpeg_timeout,
                     progress_in(start, 100))
    _check_complete(facts, run)
    reporter.report(Step.extracting_audio, 100)
    return transcoded, run.out_seconds


TRUNCATION_SLACK_S = 0.5
TRUNCATION_SLACK_RATIO = 0.02


def _check_complete(facts: ProbeFacts, run: FfmpegRun) -> None:
    """ffmpeg exits 0 on a truncated file whose index is intact (a faststart MP4 cut short): it
    decodes what is there and logs an error. Shorter output *and* an error in the log mean a
    damaged source; shorter output alone is legitimate (an audio track that ends before the video).
    """
    expected = facts.audio.duration or facts.duration
    got = run.out_seconds
    if not expected or got is None or not run.stderr.strip():
        return
    if got < expected - max(TRUNCATION_SLACK_S, TRUNCATION_SLACK_RATIO * expected):
        last = [line for line in run.stderr.splitlines() if line.strip()][-3:]
        raise JobFailure(ErrorCode.INVALID_VIDEO, f"the source is truncated or damaged: only {got:.1f} s "
                         f"of {expected:.1f} s of audio could be decoded", "\n".join(last) or None)


def _measure(facts: ProbeFacts, source: Path, before: str | None, settings: WorkerSettings,
             on_time: Callable[[float], None]) -> Loudness:
    stderr = run_ffmpeg(measure_args(facts, source, before), settings.ffmpeg_timeout, on_time).stderr
    try:
        return parse_ebur128(stderr)
    except ValueError:
        raise JobFailure(ErrorCode.EXTRACTION_FAILED, "loudness measurement failed",
                         stderr[-500:] or None) from None


def _describe(key: str, spec: OutputSpec, out: Path, transcoded: bool, seconds: float | None) -> OutputFile:
    """The result's output facts; raises (so the staged file is dropped) if there is no audio."""
    size = out.stat().st_size if out.exists() else 0
    if size == 0 or seconds == 0:
        raise JobFailure(ErrorCode.EXTRACTION_FAILED, "ffmpeg produced no audio")
    duration = seconds
    if duration is None:  # no progress block arrived (cannot normally happen): ask ffprobe
        try:
            duration = probe(out).duration
        except JobFailure as e:
            raise JobFailure(ErrorCode.EXTRACTION_FAILED, "the produced audio file is unreadable",
                             e.message) from None
    bitrate = f"{round(size * 8 / duration / 1000)}k" if duration else None
    return OutputFile(filename=key.rsplit("/", 1)[-1], path=key, size=size,
                      duration=round(duration, 3) if duration else None,
                      format=Format(spec.format).value, bitrate=bitrate, transcoded=transcoded)
