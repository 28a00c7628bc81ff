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
from typing import Any

from audio_extract_common.formats import (
    CHANNELS,
    FORMATS,
    Format,
    Quality,
    bitrate_kbps,
    check_bitrate,
    check_sample_rate,
    default_channels,
    default_sample_rate,
)

from .loudness import MEASURE_FILTER, Loudness, normalize_filter
from .probe import INPUT_FORMATS, INPUT_WHITELIST, PROTOCOLS, ProbeFacts
from .quality import CODECS, QUALITY, Tier, bitrate_args, encoder_kbps

COPY_BITRATE_SLACK = 0.9
"""A source stream at ≥ 90% of the tier's nominal bitrate meets the tier (encoders over/undershoot)."""


class InvalidOutput(ValueError):
    """The output spec cannot be produced (rejected before ffmpeg runs)."""


@dataclass(frozen=True)
class Paths:
    source: Path
    output: Path


@dataclass(frozen=True)
class OutputSpec:
    """The parts of docs/contract.md §2/§7 ``output`` that shape the command (enums and numbers,
    not strings)."""

    format: Format
    quality: Quality = Quality.medium
    bitrate: str | None = None
    normalize: bool = False
    preserve_metadata: bool = False
    sample_rate: int | None = None
    """``output.sampleRate``; None: :func:`output_sample_rate` decides."""
    channels: int | None = None
    """``output.channels``; None: the source's, at most 2."""
    trim_start: float = 0.0
    trim_end: float | None = None
    """Seconds into the source; None: its end."""

    @classmethod
    def from_model(cls, output: Any) -> OutputSpec:
        trim = getattr(output, "trim", None)
        try:
            return cls(
                format=Format(output.format),
                quality=Quality(getattr(output, "quality", Quality.medium) or Quality.medium),
                bitrate=getattr(output, "bitrate", None),
                normalize=bool(getattr(output, "normalize", False)),
                preserve_metadata=bool(getattr(output, "preserveMetadata", False)),
                sample_rate=getattr(output, "sampleRate", None),
                channels=getattr(output, "channels", None),
                trim_start=float(getattr(trim, "start", None) or 0.0),
                trim_end=None if getattr(trim, "end", None) is None else float(trim.end),  # type: ignore[union-attr]
            )
        except ValueError as e:
            raise InvalidOutput(str(e)) from None

    def validate(self) -> None:
        try:
            if self.bitrate is not None:
                check_bitrate(self.format, self.bitrate)
            if self.sample_rate is not None:
                check_sample_rate(self.format, self.sample_rate)
        except ValueError as e:
            raise InvalidOutput(str(e)) from None
        if self.channels is not None and self.channels not in CHANNELS:
            raise InvalidOutput(f"channels must be one of {', '.join(map(str, CHANNELS))}")
        if self.trim_start < 0 or (self.trim_end is not None and self.trim_end <= self.trim_start):
            raise InvalidOutput("trim start must be at least 0 and before its end")

    @property
    def trimmed(self) -> bool:
        return self.trim_start > 0 or self.trim_end is not None

    @property
    def tier(self) -> Tier:
        return QUALITY[self.format][self.quality]


def output_sample_rate(spec: OutputSpec, probe: ProbeFacts) -> int:
    """``output.sampleRate``, else the source's rate where the format takes it, else the nearest it
    does (``formats.default_sample_rate``: at most 48 kHz; libopus and LAME take fixed sets)."""
    if spec.sample_rate is not None:
        return spec.sample_rate
    return default_sample_rate(spec.format, probe.audio.sample_rate)


def output_channels(spec: OutputSpec, probe: ProbeFacts) -> int | None:
    """``output.channels``, else the source's downmixed to stereo above two (None: unknown, as is)."""
    if spec.channels is not None:
        return spec.channels
    return default_channels(probe.audio.channels)


def _high_depth(spec: OutputSpec, probe: ProbeFacts) -> bool:
    return spec.tier.high_depth and (probe.audio.bits or 0) > 16


def encoder(spec: OutputSpec, probe: ProbeFacts) -> str:
    if spec.format == Format.wav and _high_depth(spec, probe):
        return "pcm_s24le"
    return CODECS[spec.format].encoder


def can_copy(spec: OutputSpec, probe: ProbeFacts) -> bool:
    """Stream copy when the codec fits the container and nothing asks for re-encoding.

    A trim never copies: a copy can only cut between packets (up to a packet off, ~20-90 ms
    depending on the codec, plus the encoder delay it would carry over), while the contract's
    trim is exact; decoding cuts on the sample.
    """
    spec.validate()
    if spec.normalize or spec.bitrate is not None or spec.trimmed:
        return False
    if output_channels(spec, probe) != probe.audio.channels:
        return False
    codec = probe.audio.codec
    if spec.format == Format.wav:
        if codec != encoder(spec, probe):
            return False
    elif codec not in CODECS[spec.format].source_codecs:
        return False
    if probe.audio.sample_rate is None or output_sample_rate(spec, probe) != probe.audio.sample_rate:
        return False
    nominal = spec.tier.nominal_kbps
    if nominal is not None:  # lossy: the source must already meet the tier
        rate = probe.audio.bit_rate
        return rate is not None and rate >= nominal * 1000 * COPY_BITRATE_SLACK
    return True


def input_args(probe: ProbeFacts, source: Path, seek: float = 0.0) -> list[str]:
    demuxer = probe.demuxer
    if demuxer not in INPUT_FORMATS:
        raise InvalidOutput(f"input format {demuxer!r} is not allowed")
    extra = ["-enable_drefs", "0", "-use_absolute_path", "0"] if demuxer == "mov" else []
    # -ss as an input option seeks in the demuxer (fast) and, since the audio is decoded, ffmpeg
    # then drops the samples before the position (accurate seeking): the cut is exact.
    if seek > 0:
        extra += ["-ss", seconds(seek)]
    return [
        "-protocol_whitelist",
        PROTOCOLS,
        "-format_whitelist",
        INPUT_WHITELIST,
        "-f",
        demuxer,
        *extra,
        "-i",
        f"file:{_absolute(source)}",
    ]


def seconds(value: float) -> str:
    """A time for ffmpeg: plain decimal seconds, microsecond precision (never an exponent)."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def trim_args(spec: OutputSpec) -> list[str]:
    """The output's length when the trim has an end (timestamps start at 0 after the input seek)."""
    if spec.trim_end is None:
        return []
    return ["-t", seconds(spec.trim_end - spec.trim_start)]


def _absolute(path: Path) -> Path:
    if not path.is_absolute():
        raise ValueError(f"paths given to ffmpeg must be absolute: {path}")
    return path


def _base(spec: OutputSpec, probe: ProbeFacts, source: Path, loglevel: str = "error") -> list[str]:
    """Input, trim and stream choice: shared by the measuring pass (which must measure exactly
    what is extracted) and the extraction. ``probe.audio`` is the stream ``tracks`` chose."""
    return [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        loglevel,
        "-progress",
        "pipe:1",
        *input_args(probe, source, spec.trim_start),
        *trim_args(spec),
        "-map",
        f"0:{probe.audio.index}",
        "-vn",
        "-sn",
        "-dn",
    ]


def measure_args(spec: OutputSpec, probe: ProbeFacts, source: Path, before: str | None = None) -> list[str]:
    """Normalisation pass 1: ebur128 measurement (summary on stderr at log level info).

    ``before``: a filter to measure the result of (the limiter route's correction rounds).
    """
    chain = _chain(_remix_filter(spec, probe), before, MEASURE_FILTER)
    return [*_base(spec, probe, source, loglevel="info"), "-af", chain, "-f", "null", "-"]


LAYOUTS = {1: "mono", 2: "stereo"}


def _remixed_channels(spec: OutputSpec, probe: ProbeFacts) -> int | None:
    """The output's channel count when it is not the source's (a downmix or upmix), else None."""
    channels = output_channels(spec, probe)
    return channels if channels is not None and channels != probe.audio.channels else None


def _remix_filter(spec: OutputSpec, probe: ProbeFacts) -> str | None:
    """The channel conversion as a filter, for normalising: a downmix or upmix changes the loudness
    (5.1 → stereo by several LU), so it must come before what is measured and before the gain.
    ``aformat`` makes the graph's resampler remix with the same matrix ``-ac`` uses."""
    channels = _remixed_channels(spec, probe)
    return f"aformat=channel_layouts={LAYOUTS[channels]}" if channels else None


def _chain(*filters: str | None) -> str:
    return ",".join(f for f in filters if f)


def ffmpeg_args(
    spec: OutputSpec,
    probe: ProbeFacts,
    paths: Paths,
    loudness: Loudness | None = None,
    correction: float = 0.0,
    max_bytes: int | None = None,
) -> list[str]:
    """The extraction command. ``loudness`` (pass 1's measurement) is required when normalising;
    ``correction`` is the limiter route's measured gain correction (dB); ``max_bytes``: ffmpeg
    stops writing there (``-fs``), and exits 0, so the caller must compare the output's size."""
    spec.validate()
    args = _base(spec, probe, paths.source)
    if spec.preserve_metadata:
        args += ["-map_metadata", "0"]
    else:
        args += ["-map_metadata", "-1", "-map_metadata:s:a", "-1", "-map_chapters", "-1"]
    if can_copy(spec, probe):
        args += ["-c:a", "copy"]
    else:
        args += _encode_args(spec, probe, loudness, correction)
    if max_bytes is not None:
        args += ["-fs", str(max_bytes)]
    codec = CODECS[spec.format]
    return [*args, *codec.muxer_options, "-f", codec.muxer, "-y", f"file:{_absolute(paths.output)}"]


def _encode_args(
    spec: OutputSpec, probe: ProbeFacts, loudness: Loudness | None, correction: float
) -> list[str]:
    args: list[str] = []
    rate = output_sample_rate(spec, probe)
    if spec.normalize:
        if loudness is None:
            raise ValueError("normalize needs the pass-1 loudness measurement")
        filt = _chain(_remix_filter(spec, probe), normalize_filter(loudness, correction))
        if filt:
            args += ["-af", filt]
    args += ["-c:a", encoder(spec, probe)]
    if spec.bitrate is not None:
        kbps = encoder_kbps(spec.format, bitrate_kbps(spec.bitrate), rate, output_channels(spec, probe))
        args += bitrate_args(spec.format, kbps)
    else:
        args += spec.tier.args
    if spec.format == Format.flac:
        args += ["-sample_fmt", "s32" if _high_depth(spec, probe) else "s16"]
    # Always explicit: loudnorm (if it ever went dynamic) would otherwise output 192 kHz.
    args += ["-ar", str(rate)]
    remix = _remixed_channels(spec, probe)
    if remix and not spec.normalize:  # normalising remixes in its filter chain
        args += ["-ac", str(remix)]  # swresample's standard downmix (or mono → both sides)
    return args


def extension(fmt: Format) -> str:
    return FORMATS[fmt].extension
