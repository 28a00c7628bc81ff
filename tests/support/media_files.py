"""Media for the worker's tests, generated with real ffmpeg (``Media``: sources made on first use
and shared by the session), and what the tests measure of a file with ffmpeg and ffprobe."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audio_extract_worker.loudness import Loudness

SOURCE_SECONDS = 3.0


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *args], check=True, timeout=60)


def ffprobe_json(path: Path, *entries: str) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", *entries, "-of", "json", str(path)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


# Two independent noise channels: broadband content, so VBR encoders land near their nominal rates.
NOISE = (
    "anoisesrc=c=white:a=0.2:r=48000:d={d}:seed=1[l];anoisesrc=c=pink:a=0.3:r=48000:d={d}:seed=2[r];"
    "[l][r]join=inputs=2:channel_layout=stereo"
)


class Media:
    """Source files, generated on first use and shared by the session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.RLock()  # media built from other media nest

    def _make(self, name: str, build: Callable[[Path], None]) -> Path:
        path = self.root / name
        with self._lock:
            if not path.exists():
                partial = path.with_name(f"partial-{name}")
                build(partial)
                partial.rename(path)
        return path

    @property
    def pcm_mkv(self) -> Path:
        """Video + 48 kHz stereo PCM (no lossy codec, so every target is a real encode)."""
        return self._make(
            "pcm.mkv",
            lambda p: ffmpeg(
                "-f",
                "lavfi",
                "-i",
                f"testsrc=s=64x48:r=10:d={SOURCE_SECONDS}",
                "-filter_complex",
                NOISE.format(d=SOURCE_SECONDS),
                "-c:v",
                "mpeg4",
                "-c:a",
                "pcm_s16le",
                str(p),
            ),
        )

    @property
    def aac_mp4(self) -> Path:
        """Video + AAC 256k in MP4, with a title tag."""
        return self._make(
            "aac.mp4",
            lambda p: ffmpeg(
                "-f",
                "lavfi",
                "-i",
                f"testsrc=s=64x48:r=10:d={SOURCE_SECONDS}",
                "-filter_complex",
                NOISE.format(d=SOURCE_SECONDS),
                "-c:v",
                "mpeg4",
                "-c:a",
                "aac",
                "-b:a",
                "256k",
                "-metadata",
                "title=Source Title",
                str(p),
            ),
        )

    @property
    def aac_low_mp4(self) -> Path:
        """AAC at 96k: below the medium tier, so no copy for medium and above."""
        return self._make(
            "aac96.mp4",
            lambda p: ffmpeg(
                "-filter_complex", NOISE.format(d=SOURCE_SECONDS), "-c:a", "aac", "-b:a", "96k", str(p)
            ),
        )

    @property
    def video_only(self) -> Path:
        return self._make(
            "video-only.mp4",
            lambda p: ffmpeg("-f", "lavfi", "-i", "testsrc=s=64x48:r=10:d=1", "-c:v", "mpeg4", str(p)),
        )

    @property
    def truncated(self) -> Path:
        def build(p: Path) -> None:
            data = self.aac_mp4.read_bytes()
            p.write_bytes(data[: len(data) // 2])  # the moov atom (at the end) is lost

        return self._make("truncated.mp4", build)

    @property
    def truncated_faststart(self) -> Path:
        """Index (moov) first, then half the media data: probes fine, decodes only partly."""

        def build(p: Path) -> None:
            full = self.root / "faststart-full.mp4"
            ffmpeg(
                "-f",
                "lavfi",
                "-i",
                f"testsrc=s=64x48:r=10:d={SOURCE_SECONDS}",
                "-filter_complex",
                NOISE.format(d=SOURCE_SECONDS),
                "-c:v",
                "mpeg4",
                "-c:a",
                "aac",
                "-movflags",
                "+faststart",
                str(full),
            )
            data = full.read_bytes()
            p.write_bytes(data[: len(data) // 2])

        return self._make("truncated-faststart.mp4", build)

    @property
    def random_bytes(self) -> Path:
        return self._make("random.mp4", lambda p: p.write_bytes(os.urandom(64 * 1024)))

    @property
    def empty(self) -> Path:
        return self._make("empty.mp4", lambda p: p.write_bytes(b""))

    def loudness_source(self, name: str, expr: str, post: str = "") -> Path:
        return self._make(
            f"{name}.mka",
            lambda p: ffmpeg(
                "-f",
                "lavfi",
                "-i",
                f"aevalsrc='{expr}':s=48000:d={SOURCE_SECONDS}:c=stereo{post}",
                "-c:a",
                "flac",
                str(p),
            ),
        )


def decoded_seconds(path: Path) -> float:
    """Duration by decoding the whole file (container durations of ADTS/VBR files are estimates)."""
    proc = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-nostdin",
            "-i",
            str(path),
            "-f",
            "null",
            "-",
            "-progress",
            "pipe:1",
            "-nostats",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    times = [
        int(line.split("=")[1])
        for line in proc.stdout.decode().splitlines()
        if line.startswith("out_time_us=") and line.split("=")[1].lstrip("-").isdigit()
    ]
    return max(times) / 1e6


def audio_payload_kbps(path: Path) -> float:
    """Bitrate of the audio packets alone (container headers excluded: they dominate 3-s files)."""
    data = ffprobe_json(path, "-select_streams", "a:0", "-show_entries", "packet=size")
    total = sum(int(p["size"]) for p in data["packets"])
    return total * 8 / decoded_seconds(path) / 1000


def loudness(path: Path) -> Loudness:
    """ffmpeg's EBU R128 measurement of a file (integrated, range, true peak)."""
    proc = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-nostats",
            "-i",
            str(path),
            "-af",
            "ebur128=peak=true:framelog=verbose",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    from audio_extract_worker.loudness import parse_ebur128

    return parse_ebur128(proc.stderr.decode())
