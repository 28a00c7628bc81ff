"""Small generated media for ``make dev`` and the tests (``ffmpeg -f lavfi``; needs ffmpeg)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def make_media(directory: Path) -> Path:
    """Small generated sources: ``av.mp4`` (1 s video + stereo audio), ``tone.wav`` (1 s),
    ``noaudio.mp4`` (video only), ``talk.mp4``/``concert.mkv``/``lecture.mp4``/``interview.mov``
    (the sample manifests' names)."""
    directory.mkdir(parents=True, exist_ok=True)
    video = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1"]
    audio = ["-f", "lavfi", "-i", "sine=frequency=440:duration=1:sample_rate=44100"]
    _ffmpeg(
        *video,
        *audio,
        "-ac",
        "2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        "-shortest",
        str(directory / "av.mp4"),
    )
    _ffmpeg(*audio, str(directory / "tone.wav"))
    _ffmpeg(*video, "-c:v", "libx264", "-preset", "ultrafast", str(directory / "noaudio.mp4"))
    for name in ("talk.mp4", "lecture.mp4"):
        shutil.copy(directory / "av.mp4", directory / name)
    _ffmpeg(
        "-i",
        str(directory / "av.mp4"),
        "-c",
        "copy",
        "-metadata",
        "title=Concert",
        str(directory / "concert.mkv"),
    )
    _ffmpeg(
        "-i",
        str(directory / "av.mp4"),
        "-c",
        "copy",
        "-metadata",
        "title=Interview",
        str(directory / "interview.mov"),
    )
    return directory
