"""Output formats: file extension, media type, codec family, and the bitrates and sample rates each
accepts. The API's models, the CRD generator and the worker all read these tables."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Format(StrEnum):
    mp3 = "mp3"
    aac = "aac"
    flac = "flac"
    wav = "wav"
    ogg = "ogg"
    opus = "opus"


class Quality(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    extreme = "extreme"


class Priority(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"


@dataclass(frozen=True)
class FormatInfo:
    extension: str
    media_type: str
    lossy: bool
    min_kbps: int = 0
    """Lowest bitrate override accepted, in kbit/s (0 for lossless formats, which take none)."""
    max_kbps: int = 0
    sample_rates: tuple[int, ...] = ()
    """Rates ``output.sampleRate`` may ask for (filled in below: every rate unless restricted)."""


SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
"""``output.sampleRate`` values (docs/contract.md §7). All are MPEG-1/2/2.5 Layer III rates, so mp3's
"at most 48 kHz" holds for every one of them."""
OPUS_SAMPLE_RATES = (8000, 12000, 16000, 24000, 48000)
"""libopus encodes at these rates only."""
CHANNELS = (1, 2)
"""``output.channels`` values: mono or stereo."""
DEFAULT_MAX_CHANNELS = 2
"""Without ``output.channels`` a source with more channels is downmixed to stereo."""


FORMATS: dict[Format, FormatInfo] = {
    # Ranges are what the encoders accept without silently clamping (libmp3lame: MPEG-1 Layer III
    # rates; native aac and libvorbis stay usable above 32k; libopus spans 6-510k).
    Format.mp3: FormatInfo("mp3", "audio/mpeg", True, 32, 320, SAMPLE_RATES),
    Format.aac: FormatInfo("aac", "audio/aac", True, 32, 512, SAMPLE_RATES),
    Format.flac: FormatInfo("flac", "audio/flac", False, sample_rates=SAMPLE_RATES),
    Format.wav: FormatInfo("wav", "audio/wav", False, sample_rates=SAMPLE_RATES),
    Format.ogg: FormatInfo("ogg", "audio/ogg", True, 45, 500, SAMPLE_RATES),
    Format.opus: FormatInfo("opus", "audio/opus", True, 6, 510, OPUS_SAMPLE_RATES),
}

BITRATE_RE = re.compile(r"^[1-9][0-9]{0,3}k$")
"""A bitrate override: kbit/s with a ``k`` suffix, e.g. ``192k``."""


def bitrate_kbps(bitrate: str) -> int:
    if not BITRATE_RE.match(bitrate):
        raise ValueError(f"bitrate must look like '192k', got {bitrate!r}")
    return int(bitrate[:-1])


def check_bitrate(fmt: Format, bitrate: str) -> None:
    """Raise ValueError with a user-facing message when ``bitrate`` is not allowed for ``fmt``."""
    info = FORMATS[fmt]
    if not info.lossy:
        raise ValueError(f"{fmt.value} is lossless and takes no bitrate")
    kbps = bitrate_kbps(bitrate)
    if not info.min_kbps <= kbps <= info.max_kbps:
        raise ValueError(f"{fmt.value} bitrate must be between {info.min_kbps}k and {info.max_kbps}k")


def check_sample_rate(fmt: Format, rate: int) -> None:
    """Raise ValueError with a user-facing message when ``fmt`` cannot be written at ``rate``."""
    allowed = FORMATS[fmt].sample_rates
    if rate not in allowed:
        raise ValueError(f"{fmt.value} sampleRate must be one of {', '.join(map(str, allowed))}")


def default_sample_rate(fmt: Format, source_rate: int | None) -> int:
    """The source's rate when ``fmt`` takes it, else the nearest rate it does (the higher on a tie);
    48 kHz when the source's rate is unknown."""
    allowed = FORMATS[fmt].sample_rates
    if source_rate is None:
        return 48000 if 48000 in allowed else allowed[-1]
    return min(allowed, key=lambda r: (abs(r - source_rate), -r))


def default_channels(source_channels: int | None) -> int | None:
    """The source's channel count, downmixed to stereo above two; None (ffmpeg decides) if unknown."""
    if source_channels is None:
        return None
    return min(source_channels, DEFAULT_MAX_CHANNELS)
