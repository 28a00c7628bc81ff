"""The operator's store settings, as the chart's environment sets them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from audio_extract_operator.settings import SIGV4_MAX_SECONDS, Settings

P = "AUDIO_EXTRACT_OPERATOR_"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(P):
            monkeypatch.delenv(name)


def test_the_volume_stays_the_default() -> None:
    s = Settings()
    assert s.store_type == "volume" and s.s3 is None


def test_the_object_store_comes_from_nested_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "STORE_TYPE": "s3",
        "S3__BUCKET": "media",
        "S3__ENDPOINT_URL": "https://minio.storage:9000",
        "S3__PRESIGN_ENDPOINT_URL": "https://s3.example.org",
        "S3__ADDRESSING_STYLE": "path",
        "S3__CA_BUNDLE": "/etc/store-ca/ca.crt",
        "S3__PREFIX": "audio-extract",
        "S3__REGION": "eu-west-3",
    }.items():
        monkeypatch.setenv(P + name, value)
    s = Settings()
    assert s.store_type == "s3" and s.s3 is not None
    assert (s.s3.bucket, s.s3.endpoint_url, s.s3.presign_endpoint_url) == (
        "media",
        "https://minio.storage:9000",
        "https://s3.example.org",
    )
    assert (s.s3.addressing_style, str(s.s3.ca_bundle), s.s3.prefix, s.s3.region) == (
        "path",
        "/etc/store-ca/ca.crt",
        "audio-extract",
        "eu-west-3",
    )
    assert s.s3.access_key_id is None and s.s3.secret_access_key is None  # the AWS chain's
    assert s.volume_root is None


def test_an_object_store_without_its_settings_fails_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(P + "STORE_TYPE", "s3")
    with pytest.raises(ValidationError, match=f"{P}S3__BUCKET"):
        Settings()


def test_a_misspelt_s3_setting_fails_rather_than_being_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(P + "S3__BUCKET", "media")
    monkeypatch.setenv(P + "S3__ENDPOINT", "https://minio.storage:9000")
    with pytest.raises(ValidationError, match="endpoint"):
        Settings()


def test_worker_urls_last_the_deadline_and_the_queue_allowance_up_to_seven_days() -> None:
    s = Settings(active_deadline_seconds=1800, presign_queue_allowance_seconds=3600)
    assert s.worker_url_seconds == 5400
    assert Settings(presign_queue_allowance_seconds=30 * 86400).worker_url_seconds == SIGV4_MAX_SECONDS
    with pytest.raises(ValidationError, match="7 days"):
        Settings(store_type="s3", s3={"bucket": "b"}, active_deadline_seconds=SIGV4_MAX_SECONDS + 1)
