"""The API's settings: the store they choose, from the environment as the chart sets it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from audio_extract_api.settings import Settings


def test_the_default_store_is_the_volume(monkeypatch):
    for name in ("STORE_TYPE", "S3__BUCKET"):
        monkeypatch.delenv(f"AUDIO_EXTRACT_API_{name}", raising=False)
    s = Settings()
    assert (s.store_type, s.s3, s.download_url_seconds, s.upload_url_seconds) == ("volume", None, 3600, 3600)


def test_the_object_store_settings_come_from_nested_variables(monkeypatch):
    env = {
        "STORE_TYPE": "s3",
        "S3__BUCKET": "media",
        "S3__ENDPOINT_URL": "http://seaweedfs.storage:8333",
        "S3__PRESIGN_ENDPOINT_URL": "https://media.example.com",
        "S3__PREFIX": "audio-extract",
        "S3__ADDRESSING_STYLE": "path",
        "DOWNLOAD_URL_SECONDS": "600",
        "UPLOAD_URL_SECONDS": "900",
    }
    for name, value in env.items():
        monkeypatch.setenv(f"AUDIO_EXTRACT_API_{name}", value)
    s = Settings()
    assert s.store_type == "s3" and s.s3 is not None
    assert (
        s.s3.bucket,
        s.s3.endpoint_url,
        s.s3.presign_endpoint_url,
        s.s3.prefix,
        s.s3.addressing_style,
    ) == (
        "media",
        "http://seaweedfs.storage:8333",
        "https://media.example.com",
        "audio-extract",
        "path",
    )
    assert s.s3.access_key_id is None  # the standard credential chain
    assert (s.download_url_seconds, s.upload_url_seconds) == (600, 900)


def test_an_object_store_without_its_settings_fails_at_start(monkeypatch):
    monkeypatch.delenv("AUDIO_EXTRACT_API_S3__BUCKET", raising=False)
    with pytest.raises(ValidationError, match="AUDIO_EXTRACT_API_S3__BUCKET"):
        Settings(store_type="s3")


@pytest.mark.parametrize(
    "env",
    [
        {"S3__BUCKET": "b", "S3__BUKET": "typo"},  # a misspelt field is refused, not ignored
        {"S3__BUCKET": "b", "S3__ACCESS_KEY_ID": "only-half"},
        {"DOWNLOAD_URL_SECONDS": str(8 * 24 * 3600)},  # past SigV4's 7 days
    ],
)
def test_bad_object_store_settings_fail_at_start(monkeypatch, env):
    for name, value in env.items():
        monkeypatch.setenv(f"AUDIO_EXTRACT_API_{name}", value)
    with pytest.raises(ValidationError):
        Settings(store_type="s3")
