"""``source.audioTrack``: choosing among the source's audio streams (pure, over ffprobe's facts)."""

from __future__ import annotations

import pytest

from audio_extract_common.batch_spec import TrackLanguage
from audio_extract_common.batch_status import ErrorCode
from audio_extract_worker.errors import JobFailure
from audio_extract_worker.probe import parse_probe
from audio_extract_worker.tracks import select_track

FACTS = parse_probe(
    {
        "format": {"format_name": "matroska,webm", "duration": "3.0"},
        "streams": [
            {"index": 0, "codec_type": "video", "codec_name": "h264"},
            {"index": 1, "codec_type": "audio", "codec_name": "aac", "tags": {"language": "eng"}},
            {"index": 2, "codec_type": "subtitle", "codec_name": "ass"},
            {"index": 3, "codec_type": "audio", "codec_name": "aac", "tags": {"language": "fre"}},
            {
                "index": 4,
                "codec_type": "audio",
                "codec_name": "opus",
                "tags": {"language": "FRA"},
                "disposition": {"default": 1},
            },
            {"index": 5, "codec_type": "audio", "codec_name": "ac3"},
        ],
    },
    1000,
)


@pytest.mark.parametrize(
    ("track", "index"),
    [
        (None, 4),  # no choice: the default-flagged stream
        (0, 1),
        (1, 3),
        (3, 5),  # counted among audio streams only
        (TrackLanguage(language="eng"), 1),
        (TrackLanguage(language="fra"), 4),  # fre and fra are one language; the default-flagged one wins
        (TrackLanguage(language="fre"), 4),
    ],
)
def test_the_asked_track_is_chosen(track: int | TrackLanguage | None, index: int) -> None:
    assert select_track(FACTS, track).audio.index == index


@pytest.mark.parametrize(
    ("track", "asked"),
    [
        (4, "asked for audio track 4"),
        (TrackLanguage(language="deu"), "asked for an audio track in language 'deu'"),
    ],
)
def test_a_missing_track_names_what_was_asked_and_what_exists(track: int | TrackLanguage, asked: str) -> None:
    with pytest.raises(JobFailure) as failure:
        select_track(FACTS, track)
    assert failure.value.code == ErrorCode.NO_AUDIO_STREAM
    assert failure.value.details == (
        f"{asked}; the source has 4 audio streams: #0 aac eng, #1 aac fre, #2 opus FRA, "
        "#3 ac3 no language tag"
    )
