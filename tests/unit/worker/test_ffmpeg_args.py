"""Golden tests for the ffmpeg command builder, the quality table and loudness decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from audio_extract_common.formats import FORMATS, Format, Quality
from audio_extract_worker.command import (
    InvalidOutput,
    OutputSpec,
    Paths,
    can_copy,
    ffmpeg_args,
    measure_args,
    output_sample_rate,
)
from audio_extract_worker.loudness import (
    MAX_CORRECTIONS,
    Loudness,
    limiter_correction,
    normalize_filter,
    parse_ebur128,
)
from audio_extract_worker.probe import INPUT_WHITELIST, AudioStream, ProbeFacts, parse_probe
from audio_extract_worker.quality import QUALITY

PATHS = Paths(Path("/scratch/w/source"), Path("/scratch/w/output.mp3"))
HEAD = [
    "ffmpeg",
    "-hide_banner",
    "-nostdin",
    "-nostats",
    "-loglevel",
    "error",
    "-progress",
    "pipe:1",
    "-protocol_whitelist",
    "file",
    "-format_whitelist",
    INPUT_WHITELIST,
]
STRIP = ["-map_metadata", "-1", "-map_metadata:s:a", "-1", "-map_chapters", "-1"]


def facts(
    codec: str = "aac",
    rate: int = 44100,
    channels: int = 2,
    bit_rate: int | None = 192_000,
    bits: int | None = None,
    fmt: str = "mov,mp4,m4a,3gp,3g2,mj2",
    index: int = 1,
) -> ProbeFacts:
    return ProbeFacts(
        format_name=fmt,
        duration=3.0,
        size=100_000,
        only_stream=False,
        audio=AudioStream(
            index=index, codec=codec, sample_rate=rate, channels=channels, bit_rate=bit_rate, bits=bits
        ),
    )


MOV_INPUT = [
    "-f",
    "mov",
    "-enable_drefs",
    "0",
    "-use_absolute_path",
    "0",
    "-i",
    "file:/scratch/w/source",
    "-map",
    "0:1",
    "-vn",
    "-sn",
    "-dn",
]


def test_golden_mp3_medium_from_mp4() -> None:
    spec = OutputSpec(Format.mp3)
    assert ffmpeg_args(spec, facts(), PATHS) == [
        *HEAD,
        *MOV_INPUT,
        *STRIP,
        "-c:a",
        "libmp3lame",
        "-q:a",
        "4",
        "-ar",
        "44100",
        "-f",
        "mp3",
        "-y",
        "file:/scratch/w/output.mp3",
    ]


def test_golden_aac_copy_from_mp4() -> None:
    """AAC in MP4 at 192k meets 'medium' (128k): copied into ADTS, no re-encode."""
    spec = OutputSpec(Format.aac, preserve_metadata=True)
    out = Paths(PATHS.source, Path("/scratch/w/output.aac"))
    assert can_copy(spec, facts())
    assert ffmpeg_args(spec, facts(), out) == [
        *HEAD,
        *MOV_INPUT,
        "-map_metadata",
        "0",
        "-c:a",
        "copy",
        "-f",
        "adts",
        "-y",
        "file:/scratch/w/output.aac",
    ]


def test_golden_normalize_linear() -> None:
    spec = OutputSpec(Format.opus, Quality.high, normalize=True)
    m = Loudness(integrated=-30.0, threshold=-40.3, lra=0.0, true_peak=-12.5)
    args = ffmpeg_args(spec, facts(codec="opus", rate=48000), PATHS, m)
    assert args[len(HEAD) + len(MOV_INPUT) + len(STRIP) :] == [
        "-af",
        "loudnorm=I=-23:TP=-1:LRA=7.0:measured_I=-30.00:measured_TP=-12.50:measured_LRA=0.10"
        ":measured_thresh=-40.30:offset=0:linear=true:print_format=none",
        "-c:a",
        "libopus",
        "-b:a",
        "128k",
        "-ar",
        "48000",
        "-f",
        "opus",
        "-y",
        "file:/scratch/w/output.mp3",
    ]


def test_measure_pass_is_hardened_and_discards_output() -> None:
    args = measure_args(OutputSpec(Format.flac), facts(fmt="matroska,webm", index=0), PATHS.source)
    assert args == [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "info",
        "-progress",
        "pipe:1",
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        INPUT_WHITELIST,
        "-f",
        "matroska",
        "-i",
        "file:/scratch/w/source",
        "-map",
        "0:0",
        "-vn",
        "-sn",
        "-dn",
        "-af",
        "ebur128=peak=true:framelog=verbose",
        "-f",
        "null",
        "-",
    ]


@pytest.mark.parametrize("fmt", list(Format))
@pytest.mark.parametrize("quality", list(Quality))
def test_every_format_and_tier_uses_its_table_entry(fmt: Format, quality: Quality) -> None:
    spec = OutputSpec(fmt, quality)
    args = ffmpeg_args(spec, facts(codec="ac3"), PATHS)  # ac3 never copies
    tier = QUALITY[fmt][quality]
    joined = " ".join(args)
    assert " ".join(tier.args) in joined
    assert args[-4:-2] == [
        "-f",
        {"mp3": "mp3", "aac": "adts", "flac": "flac", "wav": "wav", "ogg": "ogg", "opus": "opus"}[fmt.value],
    ]
    # hardening holds for every command
    assert args[:3] == ["ffmpeg", "-hide_banner", "-nostdin"]
    assert args[args.index("-protocol_whitelist") + 1] == "file"
    assert args.index("-f") < args.index("-i")
    assert all(a.startswith("file:/") for a in args if a.startswith("file:"))
    if tier.nominal_kbps:
        assert tier.min_kbps < tier.nominal_kbps < tier.max_kbps  # type: ignore[operator]


def test_bitrate_override_replaces_tier() -> None:
    args = ffmpeg_args(OutputSpec(Format.mp3, Quality.low, bitrate="128k"), facts(), PATHS)
    assert "-q:a" not in args and args[args.index("-b:a") + 1] == "128k"
    fast = ffmpeg_args(OutputSpec(Format.aac, bitrate="160k"), facts(), PATHS)
    assert fast[fast.index("-c:a") : fast.index("-ar")] == [
        "-c:a",
        "aac",
        "-aac_coder",
        "fast",
        "-b:a",
        "160k",
    ]
    slow = ffmpeg_args(OutputSpec(Format.aac, bitrate="64k"), facts(), PATHS)
    assert "-aac_coder" not in slow and slow[slow.index("-b:a") + 1] == "64k"  # twoloop below 96k


@pytest.mark.parametrize(
    ("fmt", "bitrate", "message"),
    [
        (Format.flac, "192k", "lossless"),
        (Format.wav, "128k", "lossless"),
        (Format.mp3, "400k", "between 32k and 320k"),
        (Format.mp3, "16k", "between"),
        (Format.opus, "5k", "between 6k"),
        (Format.ogg, "600k", "between"),
        (Format.aac, "192", "look like"),
        (Format.aac, "-1k", "look like"),
        (Format.mp3, "128k -i /etc/passwd", "look like"),
    ],
)
def test_invalid_combinations_rejected_before_ffmpeg(fmt: Format, bitrate: str, message: str) -> None:
    with pytest.raises(InvalidOutput, match=message):
        ffmpeg_args(OutputSpec(fmt, bitrate=bitrate), facts(), PATHS)


def test_unknown_format_or_quality_rejected() -> None:
    class Raw:
        format = "wma"
        quality = "medium"

    with pytest.raises(InvalidOutput):
        OutputSpec.from_model(Raw())


def test_copy_policy() -> None:
    aac = facts()
    assert can_copy(OutputSpec(Format.aac, Quality.high), aac)  # 192k source meets high (192k)
    assert not can_copy(OutputSpec(Format.aac, Quality.extreme), aac)  # 256k tier: source does not meet it
    assert not can_copy(OutputSpec(Format.aac, normalize=True), aac)
    assert not can_copy(OutputSpec(Format.aac, bitrate="192k"), aac)
    assert not can_copy(OutputSpec(Format.mp3), aac)  # codec does not fit the container
    assert not can_copy(OutputSpec(Format.aac), facts(bit_rate=None))  # unknown bitrate: re-encode
    assert not can_copy(OutputSpec(Format.aac), facts(rate=96000))  # would be resampled
    assert can_copy(OutputSpec(Format.mp3, Quality.high), facts(codec="mp3", bit_rate=256_000))
    assert can_copy(OutputSpec(Format.flac, Quality.extreme), facts(codec="flac", bit_rate=None, bits=24))
    assert can_copy(OutputSpec(Format.opus), facts(codec="opus", rate=48000, bit_rate=128_000))
    assert can_copy(OutputSpec(Format.ogg, Quality.low), facts(codec="vorbis", bit_rate=128_000))
    assert can_copy(OutputSpec(Format.wav), facts(codec="pcm_s16le", bit_rate=1_411_200, bits=16))
    assert not can_copy(OutputSpec(Format.wav, Quality.high), facts(codec="pcm_s16le", bits=24))
    assert can_copy(OutputSpec(Format.wav, Quality.high), facts(codec="pcm_s24le", bits=24))


def test_sample_rate_channels_and_depth() -> None:
    assert output_sample_rate(OutputSpec(Format.opus), facts(rate=44100)) == 48000
    assert output_sample_rate(OutputSpec(Format.opus), facts(rate=22050)) == 24000  # nearest opus rate
    assert output_sample_rate(OutputSpec(Format.flac), facts(rate=96000)) == 48000
    assert output_sample_rate(OutputSpec(Format.flac), facts(rate=88200)) == 48000  # nearest allowed
    assert output_sample_rate(OutputSpec(Format.mp3), facts(rate=37800)) == 32000
    assert output_sample_rate(OutputSpec(Format.ogg), facts(rate=22050)) == 22050
    assert output_sample_rate(OutputSpec(Format.ogg, sample_rate=8000), facts(rate=22050)) == 8000
    for fmt in (Format.mp3, Format.opus, Format.aac):  # every format downmixes above stereo by default
        surround = ffmpeg_args(OutputSpec(fmt), facts(channels=6), PATHS)
        assert surround[surround.index("-ac") + 1] == "2"
    assert "-ac" not in ffmpeg_args(OutputSpec(Format.opus), facts(channels=2), PATHS)
    mono = ffmpeg_args(OutputSpec(Format.opus, channels=1), facts(channels=2), PATHS)
    assert mono[mono.index("-ac") + 1] == "1"
    upmix = ffmpeg_args(OutputSpec(Format.mp3, channels=2), facts(channels=1), PATHS)
    assert upmix[upmix.index("-ac") + 1] == "2"
    wav24 = ffmpeg_args(OutputSpec(Format.wav, Quality.extreme), facts(codec="pcm_s32le", bits=24), PATHS)
    assert wav24[wav24.index("-c:a") + 1] == "pcm_s24le"
    wav16 = ffmpeg_args(OutputSpec(Format.wav, Quality.extreme), facts(), PATHS)  # lossy source
    assert wav16[wav16.index("-c:a") + 1] == "pcm_s16le"
    flac = ffmpeg_args(OutputSpec(Format.flac, Quality.extreme), facts(codec="alac", bits=24), PATHS)
    assert flac[flac.index("-c:a") : flac.index("-ar")] == [
        "-c:a",
        "flac",
        "-compression_level",
        "8",
        "-sample_fmt",
        "s32",
    ]


def test_no_user_string_reaches_the_command_line() -> None:
    args = ffmpeg_args(OutputSpec(Format.ogg, preserve_metadata=True), facts(), PATHS)
    assert all(not a.startswith("http") for a in args)
    with pytest.raises(InvalidOutput, match="not allowed"):
        ffmpeg_args(OutputSpec(Format.ogg), facts(fmt="hls"), PATHS)
    with pytest.raises(ValueError, match="absolute"):
        ffmpeg_args(OutputSpec(Format.ogg), facts(), Paths(Path("-i"), Path("/o")))


def test_normalize_decisions() -> None:
    peaky = Loudness(integrated=-40.0, threshold=-50.0, lra=3.0, true_peak=-6.0)  # +17 dB would clip
    assert normalize_filter(peaky) == "volume=17.00dB,alimiter=limit=0.7499:attack=1:release=50:level=false"
    wide = Loudness(integrated=-20.0, threshold=-30.0, lra=18.5, true_peak=-8.0)
    assert ":LRA=18.5:" in normalize_filter(wide)  # type: ignore[operator]
    assert normalize_filter(Loudness(-70.0, -70.0, 0.0, -99.0)) is None  # silence stays silence
    quiet = Loudness(-70.0, -70.0, 0, -99)
    silent = ffmpeg_args(OutputSpec(Format.mp3, normalize=True), facts(), PATHS, quiet)
    assert "-af" not in silent and "-ar" in silent
    with pytest.raises(ValueError, match="measurement"):
        ffmpeg_args(OutputSpec(Format.mp3, normalize=True), facts(), PATHS)


EBUR128_SUMMARY = """[Parsed_ebur128_0 @ 0x55d0] Summary:

  Integrated loudness:
    I:         -31.4 LUFS
    Threshold: -41.6 LUFS

  Loudness range:
    LRA:         2.3 LU
    Threshold: -51.5 LUFS
    LRA low:   -32.6 LUFS
    LRA high:  -30.3 LUFS

  True peak:
    Peak:      -14.9 dBFS
"""


def test_parse_ebur128_summary() -> None:
    assert parse_ebur128("noise\n" + EBUR128_SUMMARY) == Loudness(-31.4, -41.6, 2.3, -14.9)
    silent = EBUR128_SUMMARY.replace("-14.9 dBFS", "-inf dBFS").replace("-31.4", "-70.0")
    assert parse_ebur128(silent).true_peak == -99.0
    with pytest.raises(ValueError):
        parse_ebur128("no summary here")


def test_parse_probe() -> None:
    data = {
        "format": {"format_name": "matroska,webm", "duration": "2.5", "bit_rate": "96000"},
        "streams": [
            {
                "index": 0,
                "codec_type": "audio",
                "codec_name": "opus",
                "sample_rate": "48000",
                "channels": 2,
                "disposition": {"default": 1},
            }
        ],
    }
    f = parse_probe(data, 1234)
    assert f.demuxer == "matroska" and f.duration == 2.5 and f.audio.bit_rate == 96000 and f.only_stream


def test_formats_table_matches_codecs() -> None:
    assert set(QUALITY) == set(FORMATS) == set(Format)


def test_normalize_out_of_loudnorm_range_uses_gain_and_limiter() -> None:
    hot = Loudness(integrated=0.4, threshold=-9.6, lra=1.0, true_peak=0.9)
    assert normalize_filter(hot).startswith("volume=-23.40dB,alimiter=")  # type: ignore[union-attr]


def test_limiter_route_filter_and_measuring() -> None:
    from audio_extract_worker.command import measure_args

    peaky = Loudness(integrated=-34.3, threshold=-44.3, lra=20.0, true_peak=0.2)
    first = normalize_filter(peaky)
    assert first.startswith("volume=11.30dB,")  # type: ignore[union-attr]
    assert normalize_filter(peaky, 5.8).startswith("volume=17.10dB,")  # type: ignore[union-attr]
    args = measure_args(OutputSpec(Format.mp3), facts(), PATHS.source, before=first)
    assert args[args.index("-af") + 1] == f"{first},ebur128=peak=true:framelog=verbose"


def _route(response):  # type: ignore[no-untyped-def]
    """A fake limiter route: ``response(correction)`` is its result's loudness; calls are recorded."""
    calls: dict[float, float] = {}

    def measure(correction: float) -> float:
        calls[correction] = response(correction)
        return calls[correction]

    return measure, calls


def test_limiter_correction_converges_on_a_compressive_response() -> None:
    measure, calls = _route(lambda c: -30.0 + 0.4 * c)  # limiting: 0.4 LU per dB of gain
    correction = limiter_correction(measure)
    assert correction in calls and abs(calls[correction] - -23.0) <= 0.3
    assert len(calls) <= 1 + MAX_CORRECTIONS


def test_limiter_correction_stops_when_gain_makes_it_quieter() -> None:
    """Sparse loud bursts: more gain, more limiting, less loudness; the first round stays the best."""
    measure, calls = _route(lambda c: -34.0 - 0.4 * c)
    assert limiter_correction(measure) == 0.0
    assert len(calls) == 2


def test_limiter_correction_returns_the_best_measured_round() -> None:
    """Whatever the response does, the correction used is a measured one, the closest to the target."""
    for response in (lambda c: -25.5 - (c > 1) * 9.0, lambda c: -30.0 + 2.5 * c, lambda c: -26.0 + 0.01 * c):
        measure, calls = _route(response)
        correction = limiter_correction(measure)
        assert correction in calls
        assert abs(calls[correction] + 23) == min(abs(v + 23) for v in calls.values())
        assert len(calls) <= 1 + MAX_CORRECTIONS


def test_golden_trim_rate_and_channels() -> None:
    """Trim: an input seek (exact, since the audio is decoded) and the output's length; both reach
    the measuring pass too, so normalisation measures exactly what is extracted."""
    spec = OutputSpec(Format.mp3, sample_rate=22050, channels=1, trim_start=1.25, trim_end=2.5)
    assert ffmpeg_args(spec, facts(), PATHS) == [
        *HEAD,
        "-f",
        "mov",
        "-enable_drefs",
        "0",
        "-use_absolute_path",
        "0",
        "-ss",
        "1.25",
        "-i",
        "file:/scratch/w/source",
        "-t",
        "1.25",
        "-map",
        "0:1",
        "-vn",
        "-sn",
        "-dn",
        *STRIP,
        "-c:a",
        "libmp3lame",
        "-q:a",
        "4",
        "-ar",
        "22050",
        "-ac",
        "1",
        "-f",
        "mp3",
        "-y",
        "file:/scratch/w/output.mp3",
    ]
    measure = measure_args(OutputSpec(Format.mp3, trim_end=0.5), facts(), PATHS.source)
    assert "-ss" not in measure and measure[measure.index("-t") + 1] == "0.5"
    tail = ffmpeg_args(OutputSpec(Format.mp3, trim_start=100000.000001), facts(), PATHS)
    assert tail[tail.index("-ss") + 1] == "100000.000001" and "-t" not in tail


def test_copy_only_when_the_options_allow_it() -> None:
    aac = facts()  # AAC 44.1 kHz stereo at 192k: copied to .aac at medium
    assert can_copy(OutputSpec(Format.aac), aac)
    assert can_copy(OutputSpec(Format.aac, sample_rate=44100, channels=2), aac)  # what it has already
    assert not can_copy(OutputSpec(Format.aac, sample_rate=48000), aac)
    assert not can_copy(OutputSpec(Format.aac, channels=1), aac)
    assert not can_copy(OutputSpec(Format.aac, trim_start=1.0), aac)  # a copy cuts between packets
    assert not can_copy(OutputSpec(Format.aac, trim_end=2.0), aac)
    assert not can_copy(OutputSpec(Format.aac), facts(channels=6))  # downmixed by default


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (OutputSpec(Format.opus, sample_rate=44100), "opus sampleRate must be one of 8000, 12000"),
        (OutputSpec(Format.mp3, sample_rate=96000), "mp3 sampleRate"),
        (OutputSpec(Format.mp3, channels=6), "channels"),
        (OutputSpec(Format.mp3, trim_start=2.0, trim_end=1.0), "trim"),
    ],
)
def test_invalid_options_rejected_before_ffmpeg(spec: OutputSpec, message: str) -> None:
    with pytest.raises(InvalidOutput, match=message):
        ffmpeg_args(spec, facts(), PATHS)


def test_parse_probe_keeps_every_audio_stream_with_its_language() -> None:
    data = {
        "format": {"format_name": "matroska,webm", "duration": "3.0"},
        "streams": [
            {"index": 0, "codec_type": "video", "codec_name": "h264"},
            {"index": 1, "codec_type": "audio", "codec_name": "aac", "tags": {"language": "eng"}},
            {
                "index": 2,
                "codec_type": "audio",
                "codec_name": "opus",
                "tags": {"language": "fre"},
                "disposition": {"default": 1},
            },
        ],
    }
    f = parse_probe(data, 1234)
    assert [(s.index, s.position, s.language) for s in f.audio_streams] == [(1, 0, "eng"), (2, 1, "fre")]
    assert f.audio.index == 2  # the default-flagged one


@pytest.mark.parametrize("source", [facts(codec="ac3"), facts("pcm_s16le", bit_rate=1_411_200, bits=16)])
def test_wav_switches_to_rf64_past_4_gib(source: ProbeFacts) -> None:
    """A RIFF header's sizes are 32-bit; the copy path writes a WAV header too."""
    args = ffmpeg_args(OutputSpec(Format.wav), source, PATHS)
    assert args[-6:-2] == ["-rf64", "auto", "-f", "wav"]
    assert "-rf64" not in ffmpeg_args(OutputSpec(Format.flac), source, PATHS)


def test_output_size_cap() -> None:
    args = ffmpeg_args(OutputSpec(Format.wav), facts(codec="ac3"), PATHS, max_bytes=1000)
    assert args[-8:-2] == ["-fs", "1000", "-rf64", "auto", "-f", "wav"]


def test_normalize_remixes_before_measuring_and_gain() -> None:
    surround, spec = facts(channels=6), OutputSpec(Format.mp3, normalize=True)
    measure = measure_args(spec, surround, PATHS.source)
    assert (
        measure[measure.index("-af") + 1]
        == "aformat=channel_layouts=stereo,ebur128=peak=true:framelog=verbose"
    )
    quiet = Loudness(-30.0, -40.0, 5.0, -12.0)
    args = ffmpeg_args(spec, surround, PATHS, quiet)
    assert args[args.index("-af") + 1].startswith("aformat=channel_layouts=stereo,loudnorm=")
    assert "-ac" not in args
    mono = ffmpeg_args(OutputSpec(Format.mp3, normalize=True, channels=1), facts(), PATHS, quiet)
    assert mono[mono.index("-af") + 1].startswith("aformat=channel_layouts=mono,loudnorm=")
    same = measure_args(spec, facts(), PATHS.source)
    assert same[same.index("-af") + 1] == "ebur128=peak=true:framelog=verbose"


def test_bitrate_override_within_what_the_encoder_takes() -> None:
    from audio_extract_worker.quality import encoder_kbps

    assert encoder_kbps(Format.ogg, 500, 8000, 1) == 42
    assert encoder_kbps(Format.ogg, 45, 8000, 1) == 42
    assert encoder_kbps(Format.ogg, 192, 22050, 2) == 180
    assert encoder_kbps(Format.ogg, 45, 44100, 2) == 45 and encoder_kbps(Format.ogg, 500, 48000, 2) == 500
    assert encoder_kbps(Format.ogg, 500, 48000, None) == 240  # unknown channels: what both take
    assert encoder_kbps(Format.opus, 510, 48000, 1) == 256 and encoder_kbps(Format.opus, 510, 48000, 2) == 510
    assert encoder_kbps(Format.mp3, 320, 8000, 1) == 320  # LAME clamps by itself
    args = ffmpeg_args(OutputSpec(Format.ogg, bitrate="500k"), facts(rate=8000, channels=1), PATHS)
    assert args[args.index("-b:a") + 1] == "42k"
