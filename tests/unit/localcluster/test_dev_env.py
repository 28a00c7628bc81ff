"""`.local/dev.env` holds the API key and the webhook signing secret: only its owner reads it, even
when an older, looser file is there."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from types import SimpleNamespace

from audio_extract_localcluster import dev, objectstore, release


def test_dev_env_is_written_owner_only(tmp_path: Path) -> None:
    (tmp_path / "dev.env").write_text("old\n")
    (tmp_path / "dev.env").chmod(0o644)
    keys = release.DevSecrets.of(tmp_path)
    cluster = SimpleNamespace(
        kubeconfig=tmp_path / "k", bin_dir=tmp_path / "b", volumes_root=tmp_path / "v", s3=None
    )
    env_file = dev.write_env(tmp_path, cluster, keys, "http://10.99.0.1:8080")  # type: ignore[arg-type]
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert f"AUDIO_EXTRACT_API_KEY={keys.api_key}\n" in env_file.read_text()
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600


def test_dev_env_has_a_key_of_a_second_tenant(tmp_path: Path) -> None:
    """`make dev` gives a second tenant's key, so that isolation can be tried by hand."""
    keys = release.DevSecrets.of(tmp_path)
    cluster = SimpleNamespace(
        kubeconfig=tmp_path / "k", bin_dir=tmp_path / "b", volumes_root=tmp_path / "v", s3=None
    )
    text = dev.write_env(tmp_path, cluster, keys, "http://10.99.0.1:8080").read_text()  # type: ignore[arg-type]
    assert f"AUDIO_EXTRACT_API_KEY_OTHER={keys.other_api_key}\n" in text
    assert keys.other_api_key.startswith("axk_") and keys.other_api_key != keys.api_key
    entries = release.dev_values("t", keys)["secrets"]["apiKeys"]
    tenants = {}
    for key_id, entry in entries.items():
        digest, *rest = entry.split()
        tenant = next((f.removeprefix("tenant=") for f in rest if f.startswith("tenant=")), key_id)
        tenants[digest] = tenant
    assert set(tenants) == {keys.api_key_digest, keys.other_api_key_digest}
    assert tenants[keys.api_key_digest] != tenants[keys.other_api_key_digest]


def test_secrets_of_an_older_dev_gain_the_second_key(tmp_path: Path) -> None:
    (tmp_path / "secrets.json").write_text(json.dumps({"api_key": "axk_old", "webhook_secret": "whsec_old"}))
    keys = release.DevSecrets.of(tmp_path)
    assert (keys.api_key, keys.webhook_secret) == ("axk_old", "whsec_old")  # kept: clients use them
    assert keys.other_api_key.startswith("axk_")
    assert release.DevSecrets.of(tmp_path) == keys  # and kept from then on
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600


def test_dev_env_names_the_bucket_for_any_s3_client(tmp_path: Path) -> None:
    """The standard AWS variables, so the aws CLI or boto3 on this machine look into the bucket."""
    s3 = objectstore.access(tmp_path / "objectstore")
    cluster = SimpleNamespace(
        kubeconfig=tmp_path / "k", bin_dir=tmp_path / "b", volumes_root=tmp_path / "v", s3=s3
    )
    text = dev.write_env(tmp_path, cluster, release.DevSecrets.of(tmp_path), "http://x").read_text()  # type: ignore[arg-type]
    for line in (
        "AWS_ENDPOINT_URL=http://10.99.0.1:8333",
        f"AWS_ACCESS_KEY_ID={s3.access_key_id}",
        f"AWS_SECRET_ACCESS_KEY={s3.secret_access_key}",
        "AWS_REGION=us-east-1",
        "AUDIO_EXTRACT_BUCKET=audio-extract",
    ):
        assert f"{line}\n" in text


def test_the_store_key_is_private_and_kept_across_runs(tmp_path: Path) -> None:
    first = objectstore.access(tmp_path)
    assert stat.S_IMODE((tmp_path / "access.json").stat().st_mode) == 0o600
    assert objectstore.access(tmp_path) == first  # a bucket kept by `make dev` stays readable
    assert objectstore.access(tmp_path / "other") != first
