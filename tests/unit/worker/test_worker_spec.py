"""Job spec parsing, output file naming and settings of the worker."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from audio_extract_worker.settings import WorkerSettings
from audio_extract_worker.spec import WorkerJob, default_filename

IDS = {"jobId": "job_0123456789abcdef", "batchId": "batch_0123456789abcdef"}


def job(source: dict, options: dict | None = None) -> WorkerJob:
    return WorkerJob.model_validate(
        {**IDS, "source": source, "output": {"format": "mp3"}, "options": options or {}}
    )


def test_default_filename() -> None:
    clip = job({"type": "url", "url": "https://x.example/a/My%20Clip.mp4?sig=1"})
    assert default_filename(clip) == "My Clip"
    assert default_filename(job({"type": "url", "url": "https://x.example/%E6%97%A5%E6%9C%AC.mkv"})) == "日本"
    assert default_filename(job({"type": "url", "url": "https://x.example/"})) == IDS["jobId"]
    assert default_filename(job({"type": "url", "url": "https://x.example/%2E%2E"})) == IDS["jobId"]
    assert default_filename(job({"type": "upload", "file": "upl_0123456789abcdef"})) == IDS["jobId"]
    named = job({"type": "url", "url": "https://x.example/v.mp4"}, {"filename": "episode-01"})
    assert default_filename(named) == "episode-01"
    # Sanitized, never refused; a name that sanitizes to nothing falls back to the default.
    assert (
        default_filename(
            job({"type": "url", "url": "https://x.example/v.mp4"}, {"filename": "../../etc/passwd"})
        )
        == "etc_passwd"
    )
    reserved = job({"type": "url", "url": "https://x.example/v.mp4"}, {"filename": "NUL"})
    assert default_filename(reserved) == "v"
    assert (
        default_filename(
            job({"type": "upload", "file": "upl_0123456789abcdef"}, {"filename": "talk.mp3"}), "mp3"
        )
        == "talk"
    )


def test_job_spec_is_strict() -> None:
    with pytest.raises(ValidationError):
        WorkerJob.model_validate(
            {**IDS, "source": {"type": "url", "url": "ftp://x"}, "output": {"format": "mp3"}}
        )
    with pytest.raises(ValidationError):
        WorkerJob.model_validate(
            {
                **IDS,
                "source": {"type": "url", "url": "http://x/v"},
                "output": {"format": "flac", "bitrate": "192k"},
            }
        )


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIO_EXTRACT_WORKER_ALLOW_CIDRS", "127.0.0.0/8, 10.0.0.0/8")
    monkeypatch.setenv("AUDIO_EXTRACT_WORKER_MAX_SOURCE_BYTES", "1000")
    s = WorkerSettings()
    assert "127.0.0.1" in s.allow and "8.8.8.8" not in s.allow and s.max_source_bytes == 1000
    monkeypatch.setenv("AUDIO_EXTRACT_WORKER_ALLOW_CIDRS", "not-a-cidr")
    with pytest.raises(ValidationError, match="invalid CIDR"):
        WorkerSettings()
