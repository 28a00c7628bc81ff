"""FilesystemStore.staged: the path the worker hands to ffmpeg as its output."""

from __future__ import annotations

from pathlib import Path

import pytest

from audio_extract_common.store import FilesystemStore


def test_staged_file_appears_only_on_success(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    with store.staged("job_1/a.mp3") as part:
        assert part.parent == tmp_path / "job_1" and part.name.startswith(".a.mp3.")
        part.write_bytes(b"audio")
        assert store.size("job_1/a.mp3") is None  # not visible while being written
    assert (tmp_path / "job_1" / "a.mp3").read_bytes() == b"audio"
    assert [p.name for p in (tmp_path / "job_1").iterdir()] == ["a.mp3"]


def test_staged_file_is_dropped_on_failure(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    with pytest.raises(RuntimeError), store.staged("job_1/a.mp3") as part:
        part.write_bytes(b"half")
        raise RuntimeError("ffmpeg failed")
    assert list((tmp_path / "job_1").iterdir()) == []


def test_staged_refuses_keys_outside_the_store(tmp_path: Path) -> None:
    with pytest.raises(ValueError), FilesystemStore(tmp_path).staged("../x.mp3"):
        pass
