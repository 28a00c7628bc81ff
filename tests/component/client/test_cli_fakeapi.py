"""The ``audio-extract`` command against the scripted server: exit codes, the error code of a failed
job, batches of ten, JSON for scripts, plain output off a terminal, and on a real pseudo-terminal
the live bars, the summary table and Ctrl-C's offer to cancel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from client_fakeapi import AUDIO, FakeApi

from support.terminal import run_in_terminal

CLI = [sys.executable, "-m", "audio_extract_client.cli"]


def _env(url: str) -> dict[str, str]:
    # No dev.env is read from a temporary directory; NO_COLOR is not set: colour must depend on the terminal.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIO_EXTRACT_") and k != "NO_COLOR"}
    return {**env, "AUDIO_EXTRACT_API_URL": url, "AUDIO_EXTRACT_API_KEY": "axk_cli"}


def _cli(url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=_env(url), cwd=cwd, timeout=120)


def _videos(tmp_path: Path) -> list[str]:
    paths = []
    for name in ("talk.mp4", "lecture.mp4"):
        (tmp_path / name).write_bytes(os.urandom(300_000))
        paths.append(str(tmp_path / name))
    return paths


def test_submit_wait_download_off_a_terminal(fake: tuple[FakeApi, str], tmp_path: Path) -> None:
    api, url = fake
    out = tmp_path / "out"
    proc = _cli(
        url,
        "submit",
        *_videos(tmp_path),
        "https://media.example/noaudio.mp4",
        "--format",
        "mp3",
        "--quality",
        "high",
        "--wait",
        "--download",
        str(out),
        "--poll-interval",
        "0.05",
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr  # one job failed
    assert "\x1b[" not in proc.stdout + proc.stderr  # no colours, no bars off a terminal
    assert "NO_AUDIO_STREAM" in proc.stdout and "noaudio.mp4: failed NO_AUDIO_STREAM" in proc.stderr
    assert "uploaded" in proc.stderr and "processing: extracting_audio" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["lecture.mp3", "talk.mp3"]
    assert (out / "talk.mp3").read_bytes() == AUDIO
    [batch] = api.batches.values()
    assert [j.spec["source"]["type"] for j in batch] == ["upload", "upload", "url"]
    assert sorted(
        api.uploads[j.spec["source"]["file"]]
        == (tmp_path / f"{j.spec['options']['filename']}.mp4").read_bytes()
        for j in batch[:2]
    ) == [True, True]


def test_more_than_ten_sources_make_several_batches_and_json_for_scripts(
    fake: tuple[FakeApi, str], tmp_path: Path
) -> None:
    api, url = fake
    api.refuse = [(503, "QUEUE_FULL", "1")]
    sources = [f"https://media.example/{i}.mp4" for i in range(12)]
    proc = _cli(
        url, "submit", *sources, "-f", "opus", "--json", "--wait", "--poll-interval", "0.05", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    jobs = json.loads(proc.stdout)["jobs"]
    assert [j["source"] for j in jobs] == sources and all(j["status"] == "completed" for j in jobs)
    assert sorted(len(b) for b in api.batches.values()) == [
        2,
        10,
    ]  # the refused one was sent again, not doubled
    assert proc.stderr == ""


def test_api_errors_and_missing_configuration_exit_non_zero(
    fake: tuple[FakeApi, str], tmp_path: Path
) -> None:
    _, url = fake
    proc = _cli(url, "status", "job_0000000000000000", cwd=tmp_path)
    assert proc.returncode == 1 and "JOB_NOT_FOUND (404)" in proc.stderr
    env = {k: v for k, v in _env(url).items() if k != "AUDIO_EXTRACT_API_KEY"}
    proc = subprocess.run(
        [*CLI, "status", "job_0000000000000000"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 2 and "AUDIO_EXTRACT_API_KEY" in proc.stderr


def test_on_a_terminal_live_bars_then_a_table(fake: tuple[FakeApi, str], tmp_path: Path) -> None:
    _, url = fake
    _videos(tmp_path)
    argv = [
        *CLI,
        "submit",
        "talk.mp4",
        "lecture.mp4",
        "-f",
        "mp3",
        "--wait",
        "-d",
        "out",
        "--poll-interval",
        "0.3",
    ]
    term = run_in_terminal(argv, _env(url), cwd=tmp_path)
    assert term.exit_code == 0, term.text
    uploading = [s for s in term.screens if "upload talk.mp4" in s]
    assert uploading and any("300.0/300.0 kB" in s for s in uploading)
    while_running = [s for s in term.screens if "processing: extracting_audio" in s]
    # One bar per job, redrawn in place: the bar glyphs and the percent from the status.
    assert while_running and any("━" in s and " 60% " in s for s in while_running), term.screens[-5:]
    rows = {
        name: next(line for line in term.screen if line.startswith(f"│ {name}.mp4"))
        for name in ("talk", "lecture")
    }
    for name, row in rows.items():
        assert "│ completed │" in row and f"{name}.mp3 (512.0 KiB)" in row and "job_" in row
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["lecture.mp3", "talk.mp3"]


def test_ctrl_c_while_waiting_offers_to_cancel(fake: tuple[FakeApi, str], tmp_path: Path) -> None:
    api, url = fake
    term = run_in_terminal(
        [*CLI, "submit", "https://media.example/a.mp4", "-f", "mp3", "--wait", "--poll-interval", "30"],
        _env(url),
        replies=[("submitted", b"\x03"), ("Cancel the unfinished jobs", b"y\r")],
    )
    assert term.exit_code == 130, term.text
    assert "cancellation requested" in term.text
    [batch] = api.batches.values()
    assert batch[0].cancelled


def test_the_console_script_is_installed() -> None:
    script = shutil.which("audio-extract", path=str(Path(sys.executable).parent))
    assert script, "pip install -e '.[cli]' installs the audio-extract command"
