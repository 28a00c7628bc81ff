"""``source.audioTrack``: which of the source's audio streams to extract (a pure choice over ffprobe's facts).

An index counts audio streams only (``0`` is the first audio stream, whatever video or subtitle
streams come before it), as ffmpeg's ``0:a:N`` does. A language matches the stream's language tag,
case-insensitively; ISO 639-2 has two codes for some languages (bibliographic ``fre``, terminology
``fra``) and containers use either, so both name the same language. Several streams of one
language: the default-flagged one, else the first.
"""

from __future__ import annotations

import dataclasses

from audio_extract_common.batch_spec import TrackLanguage
from audio_extract_common.batch_status import ErrorCode

from .errors import JobFailure
from .probe import AudioStream, ProbeFacts

# ISO 639-2/B → ISO 639-2/T, the 20 languages with two codes.
_B_TO_T = {
    "alb": "sqi",
    "arm": "hye",
    "baq": "eus",
    "bur": "mya",
    "chi": "zho",
    "cze": "ces",
    "dut": "nld",
    "fre": "fra",
    "geo": "kat",
    "ger": "deu",
    "gre": "ell",
    "ice": "isl",
    "mac": "mkd",
    "mao": "mri",
    "may": "msa",
    "per": "fas",
    "rum": "ron",
    "slo": "slk",
    "tib": "bod",
    "wel": "cym",
}


def _language(code: str | None) -> str | None:
    if not code:
        return None
    code = code.strip().lower()
    return _B_TO_T.get(code, code)


def describe(streams: tuple[AudioStream, ...]) -> str:
    """What the source has, for error details: ``#0 aac eng, #1 aac fra``."""
    if not streams:
        return "no audio streams"
    parts = [f"#{s.position} {s.codec} {s.language or 'no language tag'}" for s in streams]
    return f"{len(streams)} audio stream{'s' if len(streams) != 1 else ''}: {', '.join(parts)}"


def select_track(facts: ProbeFacts, track: int | TrackLanguage | None) -> ProbeFacts:
    """``facts`` with ``audio`` set to the asked stream; NO_AUDIO_STREAM when there is none."""
    if track is None:
        return facts
    streams = facts.audio_streams or (facts.audio,)
    if isinstance(track, int):
        chosen = next((s for s in streams if s.position == track), None)
        asked = f"audio track {track}"
    else:
        wanted = _language(track.language)
        matches = [s for s in streams if _language(s.language) == wanted]
        chosen = next((s for s in matches if s.index == facts.audio.index), matches[0] if matches else None)
        asked = f"an audio track in language {track.language!r}"
    if chosen is None:
        raise JobFailure(
            ErrorCode.NO_AUDIO_STREAM,
            f"the source has no {asked}",
            f"asked for {asked}; the source has {describe(streams)}",
        )
    return dataclasses.replace(facts, audio=chosen)
