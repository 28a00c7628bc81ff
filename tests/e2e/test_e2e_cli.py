"""The `audio-extract` command and the Python client against the installed release: local videos
uploaded, followed with live bars in a real pseudo-terminal and downloaded as playable files; a
source without audio ends in a non-zero exit naming NO_AUDIO_STREAM; a manifest applied through
the API; Ctrl-C while waiting cancels the jobs when asked; a resent submission is one batch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from system import System

from audio_extract_client import Client
from support.media_server import MediaServer
from support.terminal import run_in_terminal

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _command() -> str:
    script = shutil.which("audio-extract", path=str(Path(sys.executable).parent))
    assert script, "the venv has the audio-extract command (pip install -e '.[cli]')"
    return script


def _env(system: System) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIO_EXTRACT_") and k != "NO_COLOR"}
    return {**env, "AUDIO_EXTRACT_API_URL": system.api_url, "AUDIO_EXTRACT_API_KEY": system.keys.api_key}


def _probe(path: Path) -> dict:
    argv = ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)]
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


def test_submit_two_local_videos_wait_and_download_in_a_terminal(
    system: System, media: MediaServer, tmp_path: Path
) -> None:
    for name in ("talk.mp4", "lecture.mp4"):
        shutil.copy(media.directory / "av.mp4", tmp_path / name)
    argv = [
        _command(),
        "submit",
        "talk.mp4",
        "lecture.mp4",
        "--format",
        "mp3",
        "--quality",
        "high",
        "--wait",
        "--download",
        "out",
        "--poll-interval",
        "0.5",
    ]
    term = run_in_terminal(argv, _env(system), cwd=tmp_path, timeout=300)
    assert term.exit_code == 0, term.text
    assert any("upload talk.mp4" in s for s in term.screens), "an upload bar per file"
    assert any("━" in s and "%" in s and "lecture.mp4" in s for s in term.screens), "a live bar per job"
    for name in ("talk", "lecture"):
        row = next((line for line in term.screen if line.startswith(f"│ {name}.mp4")), None)
        assert row and "│ completed │" in row and f"{name}.mp3" in row, term.text
        info = _probe(tmp_path / "out" / f"{name}.mp3")
        assert info["format"]["format_name"] == "mp3"
        assert [s["codec_name"] for s in info["streams"] if s["codec_type"] == "audio"] == ["mp3"]
        assert 0.5 < float(info["format"]["duration"]) < 2.0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["lecture.mp3", "talk.mp3"]


def test_a_source_without_audio_exits_non_zero_with_its_code(
    system: System, media: MediaServer, tmp_path: Path
) -> None:
    shutil.copy(media.directory / "noaudio.mp4", tmp_path / "silent.mp4")
    proc = subprocess.run(
        [
            _command(),
            "submit",
            "silent.mp4",
            f"{media.url}/av.mp4",
            "-f",
            "flac",
            "--wait",
            "-d",
            "out",
            "--poll-interval",
            "0.5",
        ],
        capture_output=True,
        text=True,
        env=_env(system),
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "NO_AUDIO_STREAM" in proc.stdout and "silent.mp4: failed NO_AUDIO_STREAM" in proc.stderr
    assert "\x1b[" not in proc.stdout + proc.stderr  # not a terminal: no colours, no bars
    [flac] = list((tmp_path / "out").iterdir())
    assert _probe(flac)["format"]["format_name"] == "flac"


def test_apply_a_sample_manifest_through_the_api(system: System, media: MediaServer, tmp_path: Path) -> None:
    sample = (REPO / "crds" / "samples" / "batch-mp3-flac.yaml").read_text()
    manifest = tmp_path / "batch.yaml"
    manifest.write_text(sample.replace("http://host.audio-extract.internal:8080/videos", media.url))
    proc = subprocess.run(
        [_command(), "apply", str(manifest), "--wait", "--json", "--poll-interval", "0.5"],
        capture_output=True,
        text=True,
        env=_env(system),
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    jobs = json.loads(proc.stdout)["jobs"]
    assert [(j["status"], j["outputFile"]["format"]) for j in jobs] == [
        ("completed", "mp3"),
        ("completed", "flac"),
    ]
    assert jobs[0]["outputFile"]["filename"] == "talk-high.mp3"


def test_ctrl_c_while_waiting_cancels_the_jobs_when_asked(
    system: System, media: MediaServer, tmp_path: Path
) -> None:
    # The media server holds /slow/ answers for 20 s: the job is still downloading when Ctrl-C comes.
    argv = [_command(), "submit", f"{media.url}/slow/av.mp4", "-f", "mp3", "--wait", "--poll-interval", "0.5"]
    term = run_in_terminal(
        argv,
        _env(system),
        cwd=tmp_path,
        timeout=120,
        replies=[("downloading_video", b"\x03"), ("Cancel the unfinished jobs", b"y\r")],
    )
    assert term.exit_code == 130, term.text
    assert "cancellation requested" in term.text
    batch_id = next(word for line in term.screen for word in line.split() if word.startswith("batch_"))
    view = system.follow(
        [system.api.get(f"/v1/batch/{batch_id.rstrip(':')}").json()["data"]["jobs"][0]["jobId"]]
    )
    [final] = view.values()
    assert final["status"] == "cancelled" and final["error"]["code"] == "CANCELLED"


def test_a_resent_submission_is_one_batch(system: System, media: MediaServer) -> None:
    job = {"source": {"type": "url", "url": f"{media.url}/av.mp4"}, "output": {"format": "wav"}}
    with Client(system.api_url, system.keys.api_key) as client:
        first = client.submit_batch([job], idempotency_key="ae-e2e-resent")
        again = client.submit_batch([job], idempotency_key="ae-e2e-resent")
        assert again.batchId == first.batchId and [j.jobId for j in again.jobs] == [
            j.jobId for j in first.jobs
        ]
        final = client.wait_batch(first.batchId, interval=0.5, timeout=180)
    assert [j.status for j in final.jobs] == ["completed"]
