"""`host.recover()` puts back the host a killed cluster changed, and never touches a running one."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

from audio_extract_localcluster import host


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    monkeypatch.setattr(host, "LOCK_FILE", tmp_path / "local-cluster.lock")
    monkeypatch.setattr(host, "RECORD_FILE", tmp_path / "host-state.json")
    restored: list[Path] = []

    def fake_restore(workdir: Path) -> None:  # the real one kills processes and resets sysctls
        restored.append(workdir)
        host.RECORD_FILE.unlink()

    monkeypatch.setattr(host, "restore", fake_restore)
    return restored


def test_a_record_left_by_a_killed_cluster_is_restored(state: list[Path]) -> None:
    host.RECORD_FILE.write_text(json.dumps({"workdir": "/tmp/killed-cluster"}))
    host.LOCK_FILE.write_text("pid 1, directory /tmp/killed-cluster")  # its lock died with it

    host.recover()

    assert state == [Path("/tmp/killed-cluster")]
    assert not host.RECORD_FILE.exists()


def test_a_running_cluster_is_left_alone(state: list[Path]) -> None:
    host.RECORD_FILE.write_text(json.dumps({"workdir": "/tmp/running-cluster"}))
    fd = os.open(host.LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as claim() holds it while the cluster runs
    try:
        host.recover()
    finally:
        os.close(fd)

    assert state == []
    assert host.RECORD_FILE.exists()


def test_nothing_to_do_on_a_clean_host(state: list[Path]) -> None:
    host.recover()

    assert state == []
