"""Output options (docs/contract.md §7) through the worker on real ffmpeg: sample rate, channels, trim and
the audio track, each checked on the produced file with ffprobe (and, for what a container only
estimates, by decoding it)."""

from __future__ import annotations

import array
import itertools
import subprocess
from pathlib import Path

import pytest

from audio_extract_common.batch_status import ErrorCode
from audio_extract_common.formats import OPUS_SAMPLE_RATES, SAMPLE_RATES, Format
from support.media_files import decoded_seconds, ffmpeg, ffprobe_json
from support.worker_runs import InProcess, Run, job_spec

SECONDS = 3.0
TRIM_TOLERANCE = 0.05
CODEC = {"mp3": "mp3", "aac": "aac", "flac": "flac", "wav": "pcm_s16le", "ogg": "vorbis", "opus": "opus"}


class Sources:
    """Sources made for these tests (3 s each)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _make(self, name: str, *args: str) -> Path:
        path = self.root / name
        if not path.exists():
            ffmpeg(*args, str(path))
        return path

    @property
    def stereo_48k(self) -> Path:
        """Video + stereo PCM at 48 kHz: two different tones, so a downmix or a channel pick shows."""
        return self._make(
            "stereo.mkv",
            "-f",
            "lavfi",
            "-i",
            f"testsrc=s=64x48:r=10:d={SECONDS}",
            "-filter_complex",
            f"sine=f=440:r=48000:d={SECONDS}[l];sine=f=660:r=48000:d={SECONDS}[r];"
            "[l][r]join=inputs=2:channel_layout=stereo",
            "-c:v",
            "mpeg4",
            "-c:a",
            "pcm_s16le",
        )

    @property
    def surround_44k(self) -> Path:
        """5.1 FLAC at 44.1 kHz: the defaults keep the rate where the format takes it and downmix."""
        return self._make(
            "surround.mka",
            "-f",
            "lavfi",
            "-i",
            f"anoisesrc=c=pink:r=44100:d={SECONDS}:a=0.2",
            "-af",
            "pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0",
            "-c:a",
            "flac",
        )

    @property
    def two_languages(self) -> Path:
        """Video, then an English track at 440 Hz and a French one at 1000 Hz (the second is the
        default-flagged one, so choosing nothing takes French)."""
        return self._make(
            "languages.mkv",
            "-f",
            "lavfi",
            "-i",
            f"testsrc=s=64x48:r=10:d={SECONDS}",
            "-f",
            "lavfi",
            "-i",
            f"sine=f=440:r=48000:d={SECONDS}",
            "-f",
            "lavfi",
            "-i",
            f"sine=f=1000:r=48000:d={SECONDS}",
            "-map",
            "0",
            "-map",
            "1",
            "-map",
            "2",
            "-c:v",
            "mpeg4",
            "-c:a",
            "aac",
            "-metadata:s:a:0",
            "language=eng",
            "-metadata:s:a:1",
            "language=fra",
            "-disposition:a:0",
            "0",
            "-disposition:a:1",
            "default",
        )


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Sources:
    return Sources(tmp_path_factory.mktemp("options-media"))


def stream_of(run: Run) -> dict:
    (stream,) = ffprobe_json(run.output_path, "-show_streams")["streams"]
    return stream


def opus_head(path: Path) -> tuple[int, int]:
    """(channels, input sample rate) from the OpusHead packet: ffprobe reports every Opus stream
    at 48 kHz (the decoder's rate), the header keeps the rate the encoder ran at."""
    data = path.read_bytes()
    at = data.index(b"OpusHead")
    return data[at + 9], int.from_bytes(data[at + 12 : at + 16], "little")


def rate_and_channels(run: Run, fmt: str) -> tuple[int, int]:
    stream = stream_of(run)
    assert stream["codec_name"] == CODEC[fmt]
    if fmt == "opus":
        channels, rate = opus_head(run.output_path)
        assert channels == stream["channels"]
        return rate, channels
    return int(stream["sample_rate"]), int(stream["channels"])


def dominant_hz(path: Path, seconds: float) -> float:
    """A pure tone's frequency, from the zero crossings of the decoded mono signal."""
    raw = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-nostdin",
            "-i",
            str(path),
            "-ac",
            "1",
            "-ar",
            "48000",
            "-f",
            "s16le",
            "-",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    samples = array.array("h", raw)
    crossings = sum(1 for a, b in itertools.pairwise(samples) if (a < 0) != (b < 0))
    return crossings / 2 / seconds


def band_db(path: Path, hz: int) -> float:
    """Mean level (dB) of the decoded signal around ``hz`` (a narrow band-pass, then volumedetect)."""
    log = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-i",
            str(path),
            "-af",
            f"bandpass=f={hz}:width_type=q:w=20,volumedetect",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    ).stderr.decode()
    return float(log.rsplit("mean_volume:", 1)[1].split("dB", 1)[0])


# --- sample rate, channels and trim on every format -------------------------------------------

COMBINATIONS = [  # (sampleRate, channels, trim): what is asked
    (16000, 1, {"start": 0.5, "end": 2.0}),
    (24000, 2, {"end": 1.25}),
    (8000, 1, {"start": 1.75}),
    (48000, 2, {"start": 0.3333, "end": 2.9}),
    (None, None, {"start": 1.0, "end": 2.5}),
]


IDS = [f"{r}-{c}-{'-'.join(f'{k}{v}' for k, v in t.items())}" for r, c, t in COMBINATIONS]


@pytest.mark.parametrize(("rate", "channels", "trim"), COMBINATIONS, ids=IDS)
@pytest.mark.parametrize("fmt", [f.value for f in Format])
def test_rate_channels_and_trim(
    fmt: str,
    rate: int | None,
    channels: int | None,
    trim: dict[str, float],
    sources: Sources,
    worker: InProcess,
) -> None:
    output = {
        "format": fmt,
        "trim": trim,
        **({"sampleRate": rate} if rate else {}),
        **({"channels": channels} if channels else {}),
    }
    run = worker.run(job_spec(worker.upload(sources.stereo_48k), output))
    assert run.result.error is None, run.result.error
    out = run.result.output
    assert out is not None and out.transcoded is True  # a trim always decodes: the cut is exact
    want_rate, want_channels = rate or 48000, channels or 2  # defaults: the source's
    assert rate_and_channels(run, fmt) == (want_rate, want_channels)
    assert (out.sampleRate, out.channels) == (want_rate, want_channels)
    want_seconds = trim.get("end", SECONDS) - trim.get("start", 0.0)
    assert abs(out.duration - want_seconds) <= TRIM_TOLERANCE, out.duration  # type: ignore[operator]
    if fmt != "aac":  # ADTS carries no encoder delay: its decoded length includes the priming
        assert abs(decoded_seconds(run.output_path) - want_seconds) <= TRIM_TOLERANCE
    if fmt in ("flac", "wav", "ogg"):  # containers that state the exact length
        duration = float(ffprobe_json(run.output_path, "-show_format")["format"]["duration"])
        assert abs(duration - want_seconds) <= TRIM_TOLERANCE


@pytest.mark.parametrize("rate", SAMPLE_RATES)
def test_every_rate_mp3_takes(rate: int, sources: Sources, worker: InProcess) -> None:
    """MPEG-1 above 32 kHz, MPEG-2 and 2.5 below: LAME writes every rate of the list."""
    run = worker.run(job_spec(worker.upload(sources.stereo_48k), {"format": "mp3", "sampleRate": rate}))
    assert rate_and_channels(run, "mp3") == (rate, 2)
    assert abs(decoded_seconds(run.output_path) - SECONDS) <= 0.1


@pytest.mark.parametrize("rate", OPUS_SAMPLE_RATES)
def test_every_rate_opus_takes(rate: int, sources: Sources, worker: InProcess) -> None:
    run = worker.run(job_spec(worker.upload(sources.stereo_48k), {"format": "opus", "sampleRate": rate}))
    assert rate_and_channels(run, "opus") == (rate, 2)


@pytest.mark.parametrize(
    ("fmt", "rate"),
    [("mp3", 44100), ("aac", 44100), ("flac", 44100), ("wav", 44100), ("ogg", 44100), ("opus", 48000)],
)
def test_defaults_keep_the_rate_where_the_format_takes_it_and_downmix_to_stereo(
    fmt: str, rate: int, sources: Sources, worker: InProcess
) -> None:
    run = worker.run(job_spec(worker.upload(sources.surround_44k), {"format": fmt}))
    assert run.result.error is None, run.result.error
    assert rate_and_channels(run, fmt) == (rate, 2)
    assert (run.result.output.sampleRate, run.result.output.channels) == (rate, 2)  # type: ignore[union-attr]


def test_mono_is_a_downmix_of_both_channels(sources: Sources, worker: InProcess) -> None:
    """440 Hz left, 660 Hz right: the mono output holds both at one level (a channel pick would
    hold one of them only)."""
    run = worker.run(job_spec(worker.upload(sources.stereo_48k), {"format": "flac", "channels": 1}))
    assert rate_and_channels(run, "flac") == (48000, 1)
    left, right, between = (band_db(run.output_path, hz) for hz in (440, 660, 550))
    assert abs(left - right) < 1.5 and min(left, right) > between + 10, (left, right, between)


def test_options_equal_to_the_source_keep_the_copy_path(sources: Sources, worker: InProcess) -> None:
    """PCM 48 kHz stereo → wav asked at 48 kHz stereo: nothing to change, so copied."""
    spec = job_spec(worker.upload(sources.stereo_48k), {"format": "wav", "sampleRate": 48000, "channels": 2})
    assert worker.run(spec).result.output.transcoded is False  # type: ignore[union-attr]
    mono = job_spec(worker.upload(sources.stereo_48k), {"format": "wav", "channels": 1})
    assert worker.run(mono).result.output.transcoded is True  # type: ignore[union-attr]


def test_trim_with_normalize_measures_the_trimmed_part(sources: Sources, worker: InProcess) -> None:
    run = worker.run(
        job_spec(
            worker.upload(sources.stereo_48k),
            {"format": "flac", "normalize": True, "trim": {"start": 1.0, "end": 2.0}},
        )
    )
    assert run.result.error is None, run.result.error
    assert abs(decoded_seconds(run.output_path) - 1.0) <= TRIM_TOLERANCE


def test_trim_end_past_the_media_ends_with_the_media(sources: Sources, worker: InProcess) -> None:
    run = worker.run(
        job_spec(worker.upload(sources.stereo_48k), {"format": "wav", "trim": {"start": 2.0, "end": 60}})
    )
    assert abs(decoded_seconds(run.output_path) - 1.0) <= TRIM_TOLERANCE


@pytest.mark.parametrize("start", [SECONDS, 10.0, 1e9])
def test_a_start_past_the_end_fails_the_job(start: float, sources: Sources, worker: InProcess) -> None:
    run = worker.run(job_spec(worker.upload(sources.stereo_48k), {"format": "mp3", "trim": {"start": start}}))
    assert run.result.output is None and run.result.error is not None
    assert run.result.error.code == ErrorCode.EXTRACTION_FAILED
    assert "past the end" in run.result.error.message
    assert f"trim.start is {start:g} s" in run.result.error.details  # type: ignore[operator]
    assert "lasts 3.0" in run.result.error.details  # type: ignore[operator]
    assert run.store_files() == []


# --- audio track -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("track", "hz"),
    [
        (None, 1000),  # the default-flagged stream
        (0, 440),
        (1, 1000),  # indexes count audio streams only (the video is stream 0)
        ({"language": "eng"}, 440),
        ({"language": "fra"}, 1000),
        ({"language": "fre"}, 1000),  # the bibliographic code names the same language
    ],
)
def test_the_asked_track_is_extracted(
    track: int | dict | None, hz: int, sources: Sources, worker: InProcess
) -> None:
    source = {**worker.upload(sources.two_languages), **({"audioTrack": track} if track is not None else {})}
    run = worker.run(job_spec(source, {"format": "wav"}))
    assert run.result.error is None, run.result.error
    assert abs(dominant_hz(run.output_path, SECONDS) - hz) < 0.02 * hz


@pytest.mark.parametrize(
    ("track", "asked"),
    [
        (2, "asked for audio track 2"),
        ({"language": "deu"}, "asked for an audio track in language 'deu'"),
    ],
)
def test_a_missing_track_fails_naming_what_was_asked_and_what_exists(
    track: int | dict, asked: str, sources: Sources, worker: InProcess
) -> None:
    source = {**worker.upload(sources.two_languages), "audioTrack": track}
    run = worker.run(job_spec(source, {"format": "mp3"}))
    assert run.result.error is not None and run.result.error.code == ErrorCode.NO_AUDIO_STREAM
    assert run.result.error.details == f"{asked}; the source has 2 audio streams: #0 aac eng, #1 aac fra"
    assert run.store_files() == []


def test_a_track_by_language_with_trim_rate_and_channels(sources: Sources, worker: InProcess) -> None:
    source = {**worker.upload(sources.two_languages), "audioTrack": {"language": "eng"}}
    run = worker.run(
        job_spec(
            source, {"format": "ogg", "sampleRate": 22050, "channels": 2, "trim": {"start": 0.5, "end": 2.5}}
        )
    )
    assert rate_and_channels(run, "ogg") == (22050, 2)
    assert abs(decoded_seconds(run.output_path) - 2.0) <= TRIM_TOLERANCE
    assert abs(dominant_hz(run.output_path, 2.0) - 440) < 9
