"""Output formats: file extension, media type, codec family and the bitrates each accepts."""

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


FORMATS: dict[Format, FormatInfo] = {
    # Ranges are what the encoders accept without silently clamping (libmp3lame: MPEG-1 Layer III
    # rates; native aac and libvorbis stay usable above 32k; libopus spans 6-510k).
    Format.mp3: FormatInfo("mp3", "audio/mpeg", True, 32, 320),
    Format.aac: FormatInfo("aac", "audio/aac", True, 32, 512),
    Format.flac: FormatInfo("flac", "audio/flac", False),
    Format.wav: FormatInfo("wav", "audio/wav", False),
    Format.ogg: FormatInfo("ogg", "audio/ogg", True, 45, 500),
    Format.opus: FormatInfo("opus", "audio/opus", True, 6, 510),
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
