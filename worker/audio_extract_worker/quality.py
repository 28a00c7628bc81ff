"""The quality table: which encoder and settings each output format uses at each tier.

| format | encoder | low | medium (default) | high | extreme |
|---|---|---|---|---|---|
| mp3 | libmp3lame | VBR `-q:a 6` ~115k | VBR `-q:a 4` ~165k | VBR `-q:a 2` ~190k | CBR `-b:a 320k` |
| aac | aac (native) | `-b:a 96k` | `-b:a 128k` | `-b:a 192k` | `-b:a 256k` |
| ogg | libvorbis | `-q:a 3` ~112k | `-q:a 5` ~160k | `-q:a 6` ~192k | `-q:a 8` ~256k |
| opus | libopus | `-b:a 64k` | `-b:a 96k` | `-b:a 128k` | `-b:a 192k` |
| flac | flac | level 5, 16-bit | level 5, 16-bit | level 5, 24-bit(*) | level 8, 24-bit(*) |
| wav | pcm_s16le | 16-bit | 16-bit | 24-bit(*) pcm_s24le | 24-bit(*) pcm_s24le |

(*) 24-bit only when the source carries more than 16 bits (a lossless/PCM source); lossy sources
decode to float and gain nothing from 24 bits, so they stay 16-bit.

Why these settings:
- mp3: LAME VBR is the better quality per bit below 320k; `-q:a 2` is the usual "transparent"
  pick. Extreme is the format's ceiling, 320k CBR.
- aac: native encoder with `-aac_coder fast`, about twice as fast as the default `twoloop` at
  the same size (docs/benchmarks.md, "Encoder and filter choices"); ffmpeg's documentation says
  `fast` is worse only below ~64k, so explicit bitrates under 96k keep `twoloop`.
- ogg: libvorbis quality mode; opus: libopus in its default constrained-VBR mode.
- flac: level 5 is the encoder default; level 8 costs more CPU for slightly smaller files, only
  for extreme; levels above 8 cost much more for little (docs/benchmarks.md, "Encoder and filter
  choices").

Bitrate ranges (``min_kbps``..``max_kbps``) are what the tier produces on broadband content
(music, noise); VBR modes go lower on simple signals (a pure tone). The copy path uses
``nominal_kbps``: a source stream at or above 90% of it already meets the tier.
A ``bitrate`` override replaces the tier: CBR for mp3/aac, ABR for Vorbis, VBR target for Opus.
"""

from __future__ import annotations

from dataclasses import dataclass

from audio_extract_common.formats import Format, Quality


@dataclass(frozen=True)
class Codec:
    encoder: str
    muxer: str
    """ffmpeg muxer name for ``-f``."""
    source_codecs: frozenset[str]
    """ffprobe ``codec_name`` values that this container carries unchanged (the copy path)."""
    muxer_options: tuple[str, ...] = ()
    """Options of the muxer, on every command writing this format (the copy path too)."""


CODECS: dict[Format, Codec] = {
    Format.mp3: Codec("libmp3lame", "mp3", frozenset({"mp3"})),
    Format.aac: Codec("aac", "adts", frozenset({"aac"})),
    Format.ogg: Codec("libvorbis", "ogg", frozenset({"vorbis"})),
    Format.opus: Codec("libopus", "opus", frozenset({"opus"})),
    Format.flac: Codec("flac", "flac", frozenset({"flac"})),
    # RIFF sizes are 32-bit: past 4 GiB a plain WAV header holds 0xFFFFFFFF and readers stop
    # early or refuse the file. "auto" reserves room and writes an RF64 header only when the
    # output grows that large; smaller outputs stay plain RIFF (with a JUNK chunk).
    Format.wav: Codec("pcm_s16le", "wav", frozenset({"pcm_s16le"}), ("-rf64", "auto")),
}


@dataclass(frozen=True)
class Tier:
    args: tuple[str, ...]
    nominal_kbps: int | None = None
    """Stereo bitrate the tier aims at; None for lossless."""
    min_kbps: int | None = None
    max_kbps: int | None = None
    high_depth: bool = False
    """Lossless formats: keep more than 16 bits when the source has them."""


def _lossy(args: tuple[str, ...], nominal: int, low: int, high: int) -> Tier:
    return Tier(args, nominal, low, high)


QUALITY: dict[Format, dict[Quality, Tier]] = {
    Format.mp3: {
        Quality.low: _lossy(("-q:a", "6"), 115, 95, 140),
        Quality.medium: _lossy(("-q:a", "4"), 165, 130, 200),
        Quality.high: _lossy(("-q:a", "2"), 190, 165, 230),
        Quality.extreme: _lossy(("-b:a", "320k"), 320, 310, 330),
    },
    Format.aac: {
        Quality.low: _lossy(("-aac_coder", "fast", "-b:a", "96k"), 96, 88, 106),
        Quality.medium: _lossy(("-aac_coder", "fast", "-b:a", "128k"), 128, 118, 140),
        Quality.high: _lossy(("-aac_coder", "fast", "-b:a", "192k"), 192, 176, 208),
        Quality.extreme: _lossy(("-aac_coder", "fast", "-b:a", "256k"), 256, 236, 276),
    },
    Format.ogg: {
        Quality.low: _lossy(("-q:a", "3"), 112, 90, 135),
        Quality.medium: _lossy(("-q:a", "5"), 160, 135, 190),
        Quality.high: _lossy(("-q:a", "6"), 192, 165, 230),
        Quality.extreme: _lossy(("-q:a", "8"), 256, 220, 300),
    },
    Format.opus: {
        Quality.low: _lossy(("-b:a", "64k"), 64, 52, 72),
        Quality.medium: _lossy(("-b:a", "96k"), 96, 80, 106),
        Quality.high: _lossy(("-b:a", "128k"), 128, 108, 140),
        Quality.extreme: _lossy(("-b:a", "192k"), 192, 165, 208),
    },
    Format.flac: {
        Quality.low: Tier(("-compression_level", "5")),
        Quality.medium: Tier(("-compression_level", "5")),
        Quality.high: Tier(("-compression_level", "5"), high_depth=True),
        Quality.extreme: Tier(("-compression_level", "8"), high_depth=True),
    },
    Format.wav: {
        Quality.low: Tier(()),
        Quality.medium: Tier(()),
        Quality.high: Tier((), high_depth=True),
        Quality.extreme: Tier((), high_depth=True),
    },
}

AAC_FAST_MIN_KBPS = 96
"""Below this an explicit AAC bitrate keeps the default ``twoloop`` coder (``fast`` is worse there)."""


VORBIS_ABR_KBPS: dict[int, dict[int, tuple[int, int]]] = {
    1: {
        8000: (8, 42),
        11025: (12, 50),
        12000: (12, 50),
        16000: (16, 100),
        22050: (16, 90),
        24000: (16, 90),
        32000: (30, 190),
        44100: (32, 240),
        48000: (32, 240),
    },
    2: {
        8000: (12, 84),
        11025: (16, 100),
        12000: (16, 100),
        16000: (24, 200),
        22050: (30, 180),
        24000: (30, 180),
        32000: (36, 380),
        44100: (45, 500),
        48000: (45, 500),
    },
}
"""kbit/s libvorbis's ABR mode sets up at, by channels and sample rate (measured with libvorbis
1.3.7: its setup tables, unchanged since 1.3.0); outside them it fails "encoder setup failed".
The API's 45-500k range is the one of 44.1/48 kHz stereo."""
OPUS_MAX_KBPS_PER_CHANNEL = 256
"""libopus refuses more ("The bit rate … is unsupported"): 256k mono, 512k stereo."""


def encoder_kbps(fmt: Format, kbps: int, rate: int, channels: int | None) -> int:
    """``kbps`` brought into what the encoder takes at this rate and channel count: the API checks
    a request before the source is probed, so only the format's widest range. ``channels`` None
    (unknown, ffmpeg keeps the source's): the range every count takes."""
    counts = (1, 2) if channels is None else (channels,)
    if fmt == Format.ogg:
        low = max(VORBIS_ABR_KBPS[n][rate][0] for n in counts)
        high = min(VORBIS_ABR_KBPS[n][rate][1] for n in counts)
        return min(max(kbps, low), high)
    if fmt == Format.opus:
        return min(kbps, OPUS_MAX_KBPS_PER_CHANNEL * min(counts))
    return kbps


def bitrate_args(fmt: Format, kbps: int) -> tuple[str, ...]:
    """Encoder options for an explicit bitrate override (range-checked, :func:`encoder_kbps`)."""
    if fmt == Format.aac:
        coder = ("-aac_coder", "fast") if kbps >= AAC_FAST_MIN_KBPS else ()
        return (*coder, "-b:a", f"{kbps}k")
    return ("-b:a", f"{kbps}k")
