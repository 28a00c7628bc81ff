"""The output options of docs/contract.md §7 through the installed release: a batch using every one
of them (sampleRate, channels, trim, audioTrack by language and by index) on a two-language
source completes, and the downloaded files have the asked rate, channels, duration and track."""

from __future__ import annotations

import array
import itertools
import subprocess
from pathlib import Path

import pytest
from system import System, ffprobe_bytes

from support.media_server import MediaServer

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

TONES = {"eng": 440, "fra": 1000}  # each language's track is a tone of its own


def two_language_video(path: Path) -> None:
    """3 s of video with two stereo 48 kHz audio tracks: 440 Hz tagged eng, 1000 Hz tagged fra."""
    argv = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=3"]
    for freq in TONES.values():
        argv += ["-f", "lavfi", "-i", f"sine=frequency={freq}:duration=3:sample_rate=48000"]
    argv += ["-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:v", "libx264", "-c:a", "aac", "-ac", "2"]
    for i, language in enumerate(TONES):
        argv += [f"-metadata:s:a:{i}", f"language={language}"]
    subprocess.run([*argv, "-shortest", str(path)], check=True)


def dominant_frequency(path: Path) -> float:
    """From zero crossings of the decoded first channel: enough to tell 440 Hz from 1000 Hz."""
    pcm = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(path),
            "-map",
            "0:a:0",
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
    ).stdout
    samples = array.array("h", pcm)
    crossings = sum(1 for a, b in itertools.pairwise(samples) if (a < 0) != (b < 0))
    return crossings / 2 / (len(samples) / 48000)


def test_every_new_option_reaches_the_file(system: System, media: MediaServer, tmp_path: Path) -> None:
    two_language_video(media.directory / "two-languages.mp4")
    source = f"{media.url}/two-languages.mp4"
    jobs = [
        {
            "source": {"type": "url", "url": source, "audioTrack": {"language": "fra"}},
            "output": {
                "format": "wav",
                "sampleRate": 16000,
                "channels": 1,
                "trim": {"start": 0.5, "end": 2.0},
            },
        },
        {
            "source": {"type": "url", "url": source, "audioTrack": 0},
            "output": {"format": "flac", "sampleRate": 22050, "channels": 2, "trim": {"start": 1}},
        },
    ]
    reply = system.api.post("/v1/batch", json={"jobs": jobs})
    assert reply.status_code == 202, reply.text
    job_ids = [j["jobId"] for j in reply.json()["data"]["jobs"]]
    final = system.follow(job_ids)
    assert {f["status"] for f in final.values()} == {"completed"}, final

    expected = [("pcm_s", 16000, 1, 1.5, TONES["fra"]), ("flac", 22050, 2, 2.0, TONES["eng"])]
    for job_id, (codec, rate, channels, duration, tone) in zip(job_ids, expected, strict=True):
        status = final[job_id]
        assert status["options"]["sampleRate"] == rate and status["options"]["channels"] == channels
        assert (status["outputFile"]["sampleRate"], status["outputFile"]["channels"]) == (rate, channels)
        download = system.api.get(f"/v1/download/{job_id}")
        assert download.status_code == 200
        path = tmp_path / f"{job_id}.{jobs[job_ids.index(job_id)]['output']['format']}"
        probed = ffprobe_bytes(download.content, path)
        (stream,) = probed["streams"]
        assert stream["codec_name"].startswith(codec), stream["codec_name"]
        assert (int(stream["sample_rate"]), stream["channels"]) == (rate, channels)
        assert abs(float(probed["format"]["duration"]) - duration) <= 0.05, probed["format"]
        assert abs(dominant_frequency(path) - tone) < 0.05 * tone  # the asked track, told by its tone
