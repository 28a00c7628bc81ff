"""ffprobe: what the source is (container, duration, the audio stream we will extract).

ffprobe runs with the same input hardening as ffmpeg (local files only, real media demuxers
only), so a playlist disguised as ``.mp4`` is refused here before anything else reads it.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audio_extract_common.batch_status import ErrorCode

from .errors import JobFailure

INPUT_FORMATS = (
    "mov",
    "mp4",
    "m4a",
    "3gp",
    "3g2",
    "mj2",
    "matroska",
    "webm",
    "avi",
    "flv",
    "mpegts",
    "mpeg",
    "asf",
    "mp3",
    "aac",
    "flac",
    "wav",
    "ogg",
    "aiff",
)
"""Demuxers ffmpeg may use (``-format_whitelist``). No playlist or indirection demuxers (hls,
dash, concat, image2, …): those open further URLs or files named inside the input."""
INPUT_WHITELIST = ",".join(INPUT_FORMATS)
PROTOCOLS = "file"
"""``-protocol_whitelist``: ffmpeg reads only the local file the worker fetched."""


@dataclass(frozen=True)
class AudioStream:
    index: int
    codec: str
    sample_rate: int | None
    channels: int | None
    bit_rate: int | None
    """bit/s; None when the container does not say (common in Matroska)."""
    bits: int | None
    """Bits per sample for lossless/PCM streams, None for lossy ones."""
    duration: float | None = None
    """The stream's own duration when the container states it (Matroska often does not)."""
    language: str | None = None
    """The stream's language tag as the container has it (``eng``, ``fre``…), if any."""
    position: int = 0
    """0-based position among the source's audio streams (``source.audioTrack``'s index)."""


@dataclass(frozen=True)
class ProbeFacts:
    format_name: str
    """ffprobe's name list, e.g. ``mov,mp4,m4a,3gp,3g2,mj2``."""
    duration: float | None
    size: int
    audio: AudioStream
    only_stream: bool
    """The audio stream is the file's only stream (its bitrate then equals the file's)."""
    audio_streams: tuple[AudioStream, ...] = ()
    """Every audio stream, in order; ``audio`` is one of them (see ``tracks``)."""

    @property
    def demuxer(self) -> str:
        """The name for ``-f``: the first of the list, always one of :data:`INPUT_FORMATS`."""
        return self.format_name.split(",")[0]


def probe_args(path: Path) -> list[str]:
    return [
        "ffprobe",
        "-hide_banner",
        "-v",
        "error",
        "-protocol_whitelist",
        PROTOCOLS,
        "-format_whitelist",
        INPUT_WHITELIST,
        "-show_format",
        "-show_streams",
        "-of",
        "json",
        f"file:{path}",
    ]


def _num(value: Any, kind: type = float) -> Any:
    try:
        return kind(value) if value not in (None, "N/A", "") else None
    except (TypeError, ValueError):
        return None


def parse_probe(data: dict[str, Any], size: int) -> ProbeFacts:
    """ffprobe JSON → facts; raises JobFailure for INVALID_VIDEO / NO_AUDIO_STREAM."""
    fmt = data.get("format") or {}
    format_name = str(fmt.get("format_name") or "")
    if format_name.split(",")[0] not in INPUT_FORMATS:
        raise JobFailure(ErrorCode.INVALID_VIDEO, f"unsupported container {format_name or 'unknown'!r}")
    streams = [s for s in data.get("streams") or [] if isinstance(s, dict)]
    audio = [s for s in streams if s.get("codec_type") == "audio" and s.get("codec_name")]
    if not audio:
        kinds = sorted({str(s.get("codec_type")) for s in streams}) or ["none"]
        raise JobFailure(
            ErrorCode.NO_AUDIO_STREAM, "the source has no audio stream", f"streams found: {', '.join(kinds)}"
        )
    only = len(streams) == 1
    format_rate = _num(fmt.get("bit_rate"), int) if only else None
    described = tuple(_stream(s, i, format_rate) for i, s in enumerate(audio))
    # ffmpeg's own choice would be the stream with most channels; prefer the default-flagged one.
    chosen = next(
        (d for d, s in zip(described, audio, strict=True) if (s.get("disposition") or {}).get("default")),
        described[0],
    )
    duration = _num(fmt.get("duration")) or chosen.duration
    return ProbeFacts(
        format_name=format_name,
        duration=duration if duration and duration > 0 else None,
        size=size,
        audio=chosen,
        only_stream=only,
        audio_streams=described,
    )


def _stream(s: dict[str, Any], position: int, format_rate: int | None) -> AudioStream:
    """One ffprobe audio stream; ``format_rate``: the file's bitrate when this is its only stream."""
    bits = _num(s.get("bits_per_raw_sample"), int) or _num(s.get("bits_per_sample"), int) or None
    language = (s.get("tags") or {}).get("language")
    return AudioStream(
        index=int(s.get("index", 0)),
        codec=str(s["codec_name"]),
        sample_rate=_num(s.get("sample_rate"), int),
        channels=_num(s.get("channels"), int),
        bit_rate=_num(s.get("bit_rate"), int) or format_rate,
        bits=bits,
        duration=_num(s.get("duration")),
        language=str(language) if language else None,
        position=position,
    )


def probe(path: Path, timeout: float = 60.0) -> ProbeFacts:
    size = path.stat().st_size
    if size == 0:
        raise JobFailure(ErrorCode.INVALID_VIDEO, "the source is empty (0 bytes)")
    try:
        proc = subprocess.run(
            probe_args(path), capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise JobFailure(
            ErrorCode.INVALID_VIDEO, f"probing the source took longer than {timeout:g} s"
        ) from None
    stderr = proc.stderr.decode(errors="replace").strip()
    if proc.returncode != 0:
        lines = [line for line in stderr.splitlines() if line.strip()][-3:]
        reason = "\n".join(lines) if lines else f"ffprobe exit code {proc.returncode}"
        if "not on whitelist" in stderr:
            reason = "container type is not allowed (playlists and indirection formats are refused)"
        raise JobFailure(
            ErrorCode.INVALID_VIDEO, "the source is not a readable media file", _strip_path(reason, path)
        )
    try:
        data = json.loads(proc.stdout or b"{}")
    except json.JSONDecodeError:
        raise JobFailure(
            ErrorCode.INVALID_VIDEO, "the source is not a readable media file", "ffprobe printed no JSON"
        ) from None
    return parse_probe(data, size)


def _strip_path(text: str, path: Path) -> str:
    """Error details never show the worker's scratch paths."""
    return text.replace(f"file:{path}", "source").replace(str(path), "source")
