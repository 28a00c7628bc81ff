"""`.local/dev.env` holds the API key and the webhook signing secret: only its owner reads it, even
when an older, looser file is there."""

from __future__ import annotations

import stat
from pathlib import Path
from types import SimpleNamespace

from audio_extract_localcluster import dev, release


def test_dev_env_is_written_owner_only(tmp_path: Path) -> None:
    (tmp_path / "dev.env").write_text("old\n")
    (tmp_path / "dev.env").chmod(0o644)
    keys = release.DevSecrets.of(tmp_path)
    cluster = SimpleNamespace(kubeconfig=tmp_path / "k", bin_dir=tmp_path / "b", volumes_root=tmp_path / "v")
    env_file = dev.write_env(tmp_path, cluster, keys, "http://10.99.0.1:8080")  # type: ignore[arg-type]
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert f"AUDIO_EXTRACT_API_KEY={keys.api_key}\n" in env_file.read_text()
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600
