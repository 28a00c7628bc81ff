"""The operator's settings as the chart's environment sets them: the store, and the groups."""

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
    assert s.store.type == "volume" and s.store.s3 is None


def test_the_object_store_comes_from_nested_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "STORE__TYPE": "s3",
        "STORE__S3__BUCKET": "media",
        "STORE__S3__ENDPOINT_URL": "https://minio.storage:9000",
        "STORE__S3__PRESIGN_ENDPOINT_URL": "https://s3.example.org",
        "STORE__S3__ADDRESSING_STYLE": "path",
        "STORE__S3__CA_BUNDLE": "/etc/store-ca/ca.crt",
        "STORE__S3__PREFIX": "audio-extract",
        "STORE__S3__REGION": "eu-west-3",
    }.items():
        monkeypatch.setenv(P + name, value)
    s = Settings()
    s3 = s.store.s3
    assert s.store.type == "s3" and s3 is not None
    assert (s3.bucket, s3.endpoint_url, s3.presign_endpoint_url) == (
        "media",
        "https://minio.storage:9000",
        "https://s3.example.org",
    )
    assert (s3.addressing_style, str(s3.ca_bundle), s3.prefix, s3.region) == (
        "path",
        "/etc/store-ca/ca.crt",
        "audio-extract",
        "eu-west-3",
    )
    assert s3.access_key_id is None and s3.secret_access_key is None  # the AWS chain's
    assert s.store.volume_root is None


def test_an_object_store_without_its_settings_fails_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(P + "STORE__TYPE", "s3")
    with pytest.raises(ValidationError, match=f"{P}STORE__S3__BUCKET"):
        Settings()


def test_a_misspelt_s3_setting_fails_rather_than_being_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(P + "STORE__S3__BUCKET", "media")
    monkeypatch.setenv(P + "STORE__S3__ENDPOINT", "https://minio.storage:9000")
    with pytest.raises(ValidationError, match="endpoint"):
        Settings()


def test_worker_urls_last_the_deadline_and_the_queue_allowance_up_to_seven_days() -> None:
    s = Settings(worker={"active_deadline_seconds": 1800}, store={"presign_queue_allowance_seconds": 3600})
    assert s.worker_url_seconds == 5400
    long_queue = Settings(store={"presign_queue_allowance_seconds": 30 * 86400})
    assert long_queue.worker_url_seconds == SIGV4_MAX_SECONDS
    with pytest.raises(ValidationError, match="7 days"):
        Settings(
            store={"type": "s3", "s3": {"bucket": "b"}},
            worker={"active_deadline_seconds": SIGV4_MAX_SECONDS + 1},
        )


def test_a_group_comes_from_variables_named_group_and_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(P + "ADMISSION__MAX_RUNNING", "7")
    monkeypatch.setenv(P + "WORKER__PRIORITY_CLASSES", '{"high": "ae-high"}')
    monkeypatch.setenv(P + "WEBHOOK__SCHEDULE", "[1, 2]")
    monkeypatch.setenv(P + "NAMESPACES", '["media"]')
    s = Settings()
    assert (s.admission.max_running, s.admission.interval) == (7, 1.0)  # the group's other defaults stay
    assert s.worker.priority_class("high") == "ae-high" and s.worker.priority_class("low") is None
    assert s.webhook.schedule == [1.0, 2.0] and s.namespaces == ["media"]
