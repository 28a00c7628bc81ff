"""One job, step by step: fetch ▸ probe ▸ extract ▸ store. Returns the WorkerResult."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from audio_extract_common.batch_status import ErrorCode, InputFile, OutputFile, Step, StepTimings
from audio_extract_common.formats import Format
from audio_extract_common.results import WorkerResult
from audio_extract_common.store import Store, output_key, upload_key

from .command import (
    InvalidOutput,
    OutputSpec,
    Paths,
    can_copy,
    extension,
    ffmpeg_args,
    measure_args,
    output_channels,
    output_sample_rate,
)
from .errors import JobFailure
from .ffmpeg_run import FfmpegRun, run_ffmpeg
from .loudness import Loudness, is_linear, limiter_correction, normalize_filter, parse_ebur128
from .probe import ProbeFacts, probe
from .progress import ProgressReporter
from .settings import WorkerSettings
from .spec import WorkerJob, default_filename
from .tracks import select_track

log = logging.getLogger(__name__)

MEASURE_SHARE = 30
"""Percent of the extract step's progress bar given to the loudness measuring pass."""


class StepClock:
    """Seconds per step (``StepTimings``): ``enter`` ends the step before; ``timings`` includes the
    step running now, so a failure shows how long its step took before it failed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.seconds: dict[str, float] = {}
        self.step: str | None = None
        self.since = 0.0

    def enter(self, step: str | None) -> None:
        now = self.clock()
        if self.step is not None:
            self.seconds[self.step] = round(self.seconds.get(self.step, 0.0) + now - self.since, 3)
        self.step, self.since = step, now

    def timings(self) -> StepTimings:
        self.enter(None)
        return StepTimings(**self.seconds)


def run_job(
    job: WorkerJob, settings: WorkerSettings, store: Store, reporter: ProgressReporter
) -> WorkerResult:
    """Run ``job``; every failure ends as a result with a contract error code."""
    input_file: InputFile | None = None
    clock = StepClock()
    settings.scratch_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{job.jobId}-", dir=settings.scratch_dir)).resolve()
    try:
        spec = _validated(job)  # bad combinations end here, before any download or ffmpeg run
        clock.enter("download")
        source, name = _acquire(job, settings, store, work, reporter)
        clock.enter("probe")
        reporter.report(Step.analyzing_video, 0)
        facts = probe(source)
        input_file = InputFile(name=name, size=facts.size, duration=facts.duration, format=facts.format_name)
        reporter.report(Step.analyzing_video, 100, input_file=input_file)
        facts = select_track(facts, job.source.audioTrack)
        _check_trim(spec, facts)
        _check_length(spec, facts, settings.max_source_seconds)
        ext = extension(spec.format)
        filename = f"{default_filename(job, ext)}.{ext}"
        # an object store's output is the one object the operator presigned for this job
        key = settings.output_key or output_key(job.jobId, filename)
        # ffmpeg writes straight into the store next to the final name (or into scratch, then one
        # PUT): the output appears only on success
        with store.staged(key) as out:
            clock.enter("encode")
            transcoded, seconds = _extract(spec, facts, Paths(source, out.resolve()), settings, reporter)
            clock.enter("store")
            reporter.report(Step.finalizing, 0)
            output = _describe(key, filename, spec, facts, out, transcoded, seconds)
        reporter.report(Step.finalizing, 100)
        return WorkerResult(output=output, inputFile=input_file, timings=clock.timings())
    except JobFailure as failure:
        log.info("job %s failed: %s %s", job.jobId, failure.code, failure.message)
        return WorkerResult(
            error=failure.to_error(),
            inputFile=input_file,
            timings=clock.timings(),
            permanent=failure.permanent,
            transient=failure.transient,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _validated(job: WorkerJob) -> OutputSpec:
    try:
        spec = OutputSpec.from_model(job.output)
        spec.validate()
    except InvalidOutput as e:
        raise JobFailure(ErrorCode.EXTRACTION_FAILED, f"invalid output settings: {e}") from None
    return spec


def _source_seconds(facts: ProbeFacts) -> float | None:
    """How long the chosen audio stream lasts (the container's duration when the stream does not say)."""
    return facts.audio.duration or facts.duration


def _check_trim(spec: OutputSpec, facts: ProbeFacts) -> None:
    """A trim that starts at or past the end of the audio has nothing to extract."""
    length = _source_seconds(facts)
    if spec.trim_start > 0 and length is not None and spec.trim_start >= length:
        raise JobFailure(
            ErrorCode.EXTRACTION_FAILED,
            "trim start is past the end of the media",
            f"trim.start is {spec.trim_start:g} s; the source's audio lasts {length:.3f} s",
        )


def _check_length(spec: OutputSpec, facts: ProbeFacts, limit: float) -> None:
    """Decoded audio is far larger than compressed audio (an hour of silence is 600 KB of FLAC and
    690 MB of WAV): the length to extract is capped, not just the download."""
    length = _expected_seconds(spec, facts)
    if length is not None and length > limit:
        raise JobFailure(
            ErrorCode.SOURCE_TOO_LARGE,
            f"the audio to extract is longer than the {limit:g}-second limit",
            f"{length:.0f} s of audio" + (" after the trim" if spec.trimmed else ""),
        )


def _check_size(out: Path, limit: int) -> None:
    """ffmpeg's ``-fs`` stops the output at ``limit`` bytes and exits 0: a cut file, not a result."""
    if out.exists() and out.stat().st_size >= limit:
        raise JobFailure(
            ErrorCode.SOURCE_TOO_LARGE,
            f"the extracted audio would be larger than the {limit:,}-byte output limit",
        )


def _expected_seconds(spec: OutputSpec, facts: ProbeFacts) -> float | None:
    """The output's length as the source and the trim predict it."""
    length = _source_seconds(facts)
    if length is None:
        return None if spec.trim_end is None else spec.trim_end - spec.trim_start
    end = length if spec.trim_end is None else min(spec.trim_end, length)
    return max(0.0, end - spec.trim_start)


def _acquire(
    job: WorkerJob, settings: WorkerSettings, store: Store, work: Path, reporter: ProgressReporter
) -> tuple[Path, str]:
    """The source as a local absolute path, and its display name."""
    reporter.report(Step.downloading_video, 0)
    if job.source.type == "upload":
        file_id = job.source.file or ""
        key = upload_key(file_id)
        size = store.size(key)
        if size is None:
            raise JobFailure(
                ErrorCode.DOWNLOAD_FAILED, f"upload {file_id} was not found in the store", permanent=True
            )  # expired or deleted: it will not come back
        if size > settings.max_source_bytes:
            raise JobFailure(
                ErrorCode.SOURCE_TOO_LARGE,
                f"the source is larger than the {settings.max_source_bytes:,}-byte limit",
            )
        local = store.local_path(key)
        if local is None:  # a remote store: copy it into scratch first
            local = work / "source"
            with store.open(key) as src, open(local, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        reporter.report(Step.downloading_video, 100)
        return local.resolve(), file_id
    from . import fetch  # httpx and the address guard load only for URL sources

    dest = work / "source"
    limits = fetch.FetchLimits(
        settings.max_source_bytes, settings.connect_timeout, settings.read_timeout, settings.max_redirects
    )

    def progress(done: int, total: int | None) -> None:
        if total:
            reporter.report(Step.downloading_video, 100 * done / total)

    fetched = fetch.download(job.source.url or "", dest, settings.allow, limits, progress)
    reporter.report(Step.downloading_video, 100)
    return dest, fetched.name


def _extract(
    spec: OutputSpec, facts: ProbeFacts, paths: Paths, settings: WorkerSettings, reporter: ProgressReporter
) -> tuple[bool, float | None]:
    """Returns whether the audio was re-encoded, and the output's duration (ffmpeg's last out_time)."""
    reporter.report(Step.extracting_audio, 0)
    duration = _expected_seconds(spec, facts)
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
        loudness, correction = _loudness(spec, facts, paths.source, settings, progress_in(0, MEASURE_SHARE))
        start = MEASURE_SHARE
    run = run_ffmpeg(
        ffmpeg_args(spec, facts, paths, loudness, correction, settings.max_output_bytes),
        settings.ffmpeg_timeout,
        progress_in(start, 100),
    )
    _check_size(paths.output, settings.max_output_bytes)
    _check_complete(_expected_seconds(spec, facts), run)
    reporter.report(Step.extracting_audio, 100)
    return transcoded, run.out_seconds


TRUNCATION_SLACK_S = 0.5
TRUNCATION_SLACK_RATIO = 0.02


def _check_complete(expected: float | None, run: FfmpegRun) -> None:
    """ffmpeg exits 0 on a truncated file whose index is intact (a faststart MP4 cut short): it
    decodes what is there and logs an error. Shorter output *and* an error in the log mean a
    damaged source; shorter output alone is legitimate (an audio track that ends before the video).
    """
    got = run.out_seconds
    if not expected or got is None or not run.stderr.strip():
        return
    if got < expected - max(TRUNCATION_SLACK_S, TRUNCATION_SLACK_RATIO * expected):
        last = [line for line in run.stderr.splitlines() if line.strip()][-3:]
        raise JobFailure(
            ErrorCode.INVALID_VIDEO,
            f"the source is truncated or damaged: only {got:.1f} s "
            f"of {expected:.1f} s of audio could be decoded",
            "\n".join(last) or None,
        )


def _loudness(
    spec: OutputSpec,
    facts: ProbeFacts,
    source: Path,
    settings: WorkerSettings,
    on_time: Callable[[float], None],
) -> tuple[Loudness, float]:
    """Pass 1's measurement, and the limiter route's gain correction (0 on the loudnorm route)."""
    loudness = _measure(spec, facts, source, None, settings, on_time)
    chosen = normalize_filter(loudness)
    if not chosen or is_linear(chosen):
        return loudness, 0.0

    def route(correction: float) -> float:
        before = normalize_filter(loudness, correction)
        return _measure(spec, facts, source, before, settings, lambda seconds: None).integrated

    return loudness, limiter_correction(route)


def _measure(
    spec: OutputSpec,
    facts: ProbeFacts,
    source: Path,
    before: str | None,
    settings: WorkerSettings,
    on_time: Callable[[float], None],
) -> Loudness:
    stderr = run_ffmpeg(measure_args(spec, facts, source, before), settings.ffmpeg_timeout, on_time).stderr
    try:
        return parse_ebur128(stderr)
    except ValueError:
        raise JobFailure(
            ErrorCode.EXTRACTION_FAILED, "loudness measurement failed", stderr[-500:] or None
        ) from None


def _describe(
    key: str,
    filename: str,
    spec: OutputSpec,
    facts: ProbeFacts,
    out: Path,
    transcoded: bool,
    seconds: float | None,
) -> OutputFile:
    """The result's output facts; raises (so the staged file is dropped) if there is no audio.

    ``sampleRate`` and ``channels`` are what ffmpeg was told (a copy is only made when they are the
    source's): ffprobe reports every Opus stream at 48 kHz, whatever rate it was encoded at."""
    size = out.stat().st_size if out.exists() else 0
    if size == 0 or seconds == 0:
        details = None
        if spec.trimmed:  # a source without a duration to check the trim against beforehand
            details = f"nothing of the source lies between {spec.trim_start:g} s and the trim's end"
        raise JobFailure(ErrorCode.EXTRACTION_FAILED, "ffmpeg produced no audio", details)
    expected = _expected_seconds(spec, facts)
    # ffmpeg's last output time ends on the encoder's last frame, padded (an 8 kHz MP3 frame is
    # 72 ms); the player trims that padding, and the output never holds more than the source had.
    duration = seconds if seconds is None or expected is None else min(seconds, expected)
    if duration is None:  # no progress block arrived (cannot normally happen): ask ffprobe
        try:
            duration = probe(out).duration
        except JobFailure as e:
            raise JobFailure(
                ErrorCode.EXTRACTION_FAILED, "the produced audio file is unreadable", e.message
            ) from None
    bitrate = f"{round(size * 8 / duration / 1000)}k" if duration else None
    return OutputFile(
        filename=filename,
        path=key,
        size=size,
        duration=round(duration, 3) if duration else None,
        format=Format(spec.format).value,
        bitrate=bitrate,
        sampleRate=output_sample_rate(spec, facts),
        channels=output_channels(spec, facts),
        transcoded=transcoded,
    )
