"""ffmpeg command lines as pure functions of (output spec, probe facts, paths).

Hardening, on every command line:
- ``-nostdin``; the input is a local file given as ``file:<absolute path>`` under the scratch
  or store directory, never a user string (the URL was fetched by the worker itself);
- ``-protocol_whitelist file`` and ``-format_whitelist`` of real media demuxers (no hls, dash,
  concat…), plus ``-f`` set to the demuxer ffprobe found, so nothing inside the file can make
  ffmpeg open another URL or file; for MOV/MP4, external data references stay off;
- every option value comes from the quality table or from numbers, never from the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from audio_extract_common.formats import FORMATS, Format, Quality, bitrate_kbps, check_bitrate

from .loudness import MEASURE_FILTER, Loudness, normalize_filter
from .probe import INPUT_FORMATS, INPUT_WHITELIST, PROTOCOLS, ProbeFacts
from .quality import CODECS, QUALITY, Tier, bitrate_args

COPY_BITRATE_SLACK = 0.9
"""A source stream at ≥ 90% of the tier's nominal bitrate meets the tier (encoders over/undershoot)."""
MP3_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000})


class InvalidOutput(ValueError):
    """The output spec cannot be produced (rejected before ffmpeg runs)."""


@dataclass(frozen=True)
class Paths:
    source: Path
    output: Path


@dataclass(frozen=True)
class OutputSpec:
    """The parts of CONTRACT §2 ``output`` that shape the command (enums, not strings)."""

    format: Format
    quality: Quality = Quality.medium
    bitrate: str | None = None
    normalize: bool = False
    preserve_metadata: bool = False

    @classmethod
    def from_model(cls, output: object) -> OutputSpec:
        try:
            return cls(
                format=Format(output.format),
                quality=Quality(getattr(output, "quality", Quality.medium) or Quality.medium),
                bitrate=getattr(output, "bitrate", None),
                normalize=bool(getattr(output, "normalize", False)),
                preserve_metadata=bool(getattr(output, "preserveMetadata", False)),
            )
        except ValueError as e:
            raise InvalidOutput(str(e)) from None

    def validate(self) -> None:
        if self.bitrate is not None:
            try:
                check_bitrate(self.format, self.bitrate)
            except ValueError as e:
                raise InvalidOutput(str(e)) from None

    @property
    def tier(self) -> Tier:
        return QUALITY[self.format][self.quality]


def output_sample_rate(spec: OutputSpec, probe: ProbeFacts) -> int:
    """Keep the source rate up to 48 kHz; libopus only runs at 48 kHz; MP3 takes its MPEG rates."""
    rate = probe.audio.sample_rate or 48000
    if spec.format == Format.opus:
        return 48000
    if rate > 48000:
        return 44100 if rate % 44100 == 0 else 48000
    if spec.format == Format.mp3 and rate not in MP3_RATES:
        return 48000
    return rate


def _high_depth(spec: OutputSpec, probe: ProbeFacts) -> bool:
    return spec.tier.high_depth and (probe.audio.bits or 0) > 16


def encoder(spec: OutputSpec, probe: ProbeFacts) -> str:
    if spec.format == Format.wav and _high_depth(spec, probe):
        return "pcm_s24le"
    return CODECS[spec.format].encoder


def can_copy(spec: OutputSpec, probe: ProbeFacts) -> bool:
    """Stream copy when the codec fits the container and nothing asks for re-encoding."""
    spec.validate()
    if spec.normalize or spec.bitrate is not None:
        return False
    codec = probe.audio.codec
    if spec.format == Format.wav:
        if codec != encoder(spec, probe):
            return False
    elif codec not in CODECS[spec.format].source_codecs:
        return False
    if probe.audio.sample_rate is None or output_sample_rate(spec, probe) != probe.audio.sample_rate:
        return False
    if spec.format == Format.mp3 and (probe.audio.channels or 0) > 2:
        return False
    nominal = spec.tier.nominal_kbps
    if nominal is not None:  # lossy: the source must already meet the tier
        rate = probe.audio.bit_rate
        return rate is not None and rate >= nominal * 1000 * COPY_BITRATE_SLACK
    return True


def input_args(probe: ProbeFacts, source: Path) -> list[str]:
    demuxer = probe.demuxer
    if demuxer not in INPUT_FORMATS:
        raise InvalidOutput(f"input format {demuxer!r} is not allowed")
    extra = ["-enable_drefs", "0", "-use_absolute_path", "0"] if demuxer == "mov" else []
    return ["-protocol_whitelist", PROTOCOLS, "-format_whitelist", INPUT_WHITELIST,
            "-f", demuxer, *extra, "-i", f"file:{_absolute(source)}"]


def _absolute(path: Path) -> Path:
    if not path.is_absolute():
        raise ValueError(f"paths given to ffmpeg must be absolute: {path}")
    return path


def _base(probe: ProbeFacts, source: Path, loglevel: str = "error") -> list[str]:
    return ["ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", loglevel,
            "-progress", "pipe:1", *input_args(probe, source),
            "-map", f"0:{probe.audio.index}", "-vn", "-sn", "-dn"]


def measure_args(probe: ProbeFacts, source: Path, before: str | None = None) -> list[str]:
    """Normalisation pass 1: ebur128 measurement (summary on stderr at log level info).

    ``before``: a filter to measure the result of (the limiter route's correction rounds).
    """
    chain = f"{before},{MEASURE_FILTER}" if before else MEASURE_FILTER
    return [*_base(probe, source, loglevel="info"), "-af", chain, "-f", "null", "-"]


def ffmpeg_args(spec: OutputSpec, probe: ProbeFacts, paths: Paths,
                loudness: Loudness | None = None, correction: float = 0.0) -> list[str]:
    """The extraction command. ``loudness`` (pass 1's measurement) is required when normalising;
    ``correction`` is the limiter route's measured gain correction (dB)."""
    spec.validate()
    args = _base(probe, paths.source)
    if spec.preserve_metadata:
        args += ["-map_metadata", "0"]
    else:
        args += ["-map_metadata", "-1", "-map_metadata:s:a", "-1", "-map_chapters", "-1"]
    if can_copy(spec, probe):
        args += ["-c:a", "copy"]
    else:
        args += _encode_args(spec, probe, loudness, correction)
    return [*args, "-f", CODECS[spec.format].muxer, "-y", f"file:{_absolute(paths.output)}"]


def _encode_args(spec: OutputSpec, probe: ProbeFacts, loudness: Loudness | None,
                 correction: float) -> list[str]:
    args: list[str] = []
    rate = output_sample_rate(spec, probe)
    if spec.normalize:
        if loudness is None:
            raise ValueError("normalize needs the pass-1 loudness measurement")
        filt = normalize_filter(loudness, correction)
        if filt:
            args += ["-af", filt]
    args += ["-c:a", encoder(spec, probe)]
    if spec.bitrate is not None:
        args += bitrate_args(spec.format, bitrate_kbps(spec.bitrate))
    else:
        args += spec.tier.args
    if spec.format == Format.flac:
        args += ["-sample_fmt", "s32" if _high_depth(spec, probe) else "s16"]
    # Always explicit: loudnorm (if it ever went dynamic) would otherwise output 192 kHz.
    args += ["-ar", str(rate)]
    if spec.format == Format.mp3 and (probe.audio.channels or 0) > 2:
        args += ["-ac", "2"]  # LAME takes mono or stereo only
    return args


def extension(fmt: Format) -> str:
    return FORMATS[fmt].extension
