"""The presigned store's pure parts: sizes from a ranged answer, retry waits, media types, error
texts that never carry a URL's signature, and the settings that bring the URLs in."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from audio_extract_worker import __main__ as entry
from audio_extract_worker.presigned import (
    PresignedStore,
    Retry,
    _NoQuery,
    _transport_problem,
    content_type,
    retryable,
    store_error,
    total_size,
)
from audio_extract_worker.settings import WorkerSettings

SIGNATURE = "d3adb33fd3adb33fd3adb33fd3adb33f"
URL = (
    "http://store.internal:8333/bucket/job_1/a.mp3?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    f"&X-Amz-Credential=key%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature={SIGNATURE}"
)


@pytest.mark.parametrize(
    ("status", "headers", "size"),
    [
        (206, {"Content-Range": "bytes 0-0/1234567"}, 1234567),
        (206, {"Content-Range": "BYTES 0-0/7"}, 7),
        (416, {"Content-Range": "bytes */0"}, 0),  # an empty object: no byte 0 to send
        (200, {"Content-Length": "42"}, 42),  # a store that ignores Range
        (206, {"Content-Range": "bytes 0-0/*"}, None),  # a length the store does not know
        (206, {}, None),
        (200, {}, None),
        (500, {"Content-Length": "42"}, None),
    ],
)
def test_total_size_from_the_answer_to_a_one_byte_range(
    status: int, headers: dict[str, str], size: int | None
) -> None:
    assert total_size(status, httpx.Headers(headers)) == size


def test_retry_waits_double_up_to_a_cap_and_honour_retry_after_within_it() -> None:
    retry = Retry(attempts=5, backoff=0.5, max_delay=3.0)
    assert [retry.delay(n, None) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]
    assert retry.delay(1, 2.0) == 2.0  # the store asked for longer
    assert retry.delay(3, 0.0) == 2.0  # never shorter than the backoff
    assert retry.delay(1, 3600.0) == 3.0  # a long Retry-After is the Job's backoff's, not a blocked pod's


@pytest.mark.parametrize(
    ("status", "again"),
    [
        (500, True),
        (503, True),
        (429, True),
        (408, True),
        (403, False),
        (404, False),
        (400, False),
        (200, False),
    ],
)
def test_what_is_retried(status: int, again: bool) -> None:
    assert retryable(status) is again


def test_content_type_by_the_outputs_extension() -> None:
    assert content_type("job_1/talk.mp3") == "audio/mpeg"
    assert content_type("outputs/job_1/Talk.FLAC") == "audio/flac"
    assert content_type("job_1/a.opus") == "audio/opus"
    assert content_type("job_1/noextension") is None
    assert content_type("job_1/a.exe") is None


def test_store_error_names_the_status_and_the_s3_code_not_the_message() -> None:
    body = (
        b'<?xml version="1.0"?><Error><Code>AccessDenied</Code>'
        b"<Message>Request has expired</Message><Resource>/bucket/job_1/a.mp3</Resource></Error>"
    )
    assert store_error(httpx.Response(403, content=body)) == "HTTP 403 AccessDenied"
    assert store_error(httpx.Response(502, content=b"<html>bad gateway</html>")) == "HTTP 502"


def test_a_transport_error_is_told_without_the_query() -> None:
    query = httpx.URL(URL).query.decode()
    text = _transport_problem(httpx.ConnectError(f"cannot reach {URL}"), URL)
    assert text.startswith("ConnectError: cannot reach") and SIGNATURE not in text and query not in text
    assert _transport_problem(httpx.ReadTimeout(""), URL) == "ReadTimeout"


def test_httpx_request_lines_lose_the_query() -> None:
    record = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        'HTTP Request: %s %s "%s %d %s"',
        ("PUT", httpx.URL(URL), "HTTP/1.1", 200, "OK"),
        None,
    )
    assert _NoQuery().filter(record)
    line = record.getMessage()
    assert SIGNATURE not in line and "X-Amz" not in line
    assert "/bucket/job_1/a.mp3" in line  # the object is still named


def make_store(tmp_path: Path, source_url: str | None = None) -> PresignedStore:
    return PresignedStore(
        output_url=URL,
        output_key="job_1/a.mp3",
        source_url=source_url,
        scratch_dir=tmp_path,
        max_source_bytes=1000,
        connect_timeout=1,
        read_timeout=1,
    )


def test_the_store_writes_its_one_object_and_reads_its_one_upload(tmp_path: Path) -> None:
    with make_store(tmp_path) as store:
        with pytest.raises(ValueError, match=r"job_1/a\.mp3"), store.staged("job_1/other.mp3"):
            pass
        with pytest.raises(ValueError, match=r"job_1/a\.mp3"):
            store.put_file("job_2/a.mp3", tmp_path / "x")
        with pytest.raises(NotImplementedError, match="deletes nothing"):
            store.delete_prefix("job_1")
        with pytest.raises(ValueError, match="uploaded source only"):
            store.size("job_1/a.mp3")
        assert len(list(tmp_path.iterdir())) == 1  # its own scratch directory
    assert list(tmp_path.iterdir()) == []  # removed on close


def test_an_upload_without_a_source_url_is_a_permanent_internal_error(tmp_path: Path) -> None:
    from audio_extract_worker.errors import JobFailure

    with make_store(tmp_path) as store, pytest.raises(JobFailure) as failure:
        store.size("uploads/upl_1")
    assert failure.value.permanent and "SOURCE_URL" in failure.value.message


def test_only_http_urls_are_accepted_and_the_refusal_does_not_echo_them(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as refused:
        PresignedStore(
            output_url=URL.replace("http:", "file:"),
            output_key="k",
            source_url=None,
            scratch_dir=tmp_path,
            max_source_bytes=1,
            connect_timeout=1,
            read_timeout=1,
        )
    assert SIGNATURE not in str(refused.value)


def test_settings_hold_the_urls_as_secrets(tmp_path: Path) -> None:
    settings = WorkerSettings(output_url=URL, output_key="job_1/a.mp3", source_url=URL, scratch_dir=tmp_path)
    assert settings.presigned and settings.output_url is not None
    assert settings.output_url.get_secret_value() == URL
    assert SIGNATURE not in repr(settings) and SIGNATURE not in str(settings)
    assert not WorkerSettings().presigned


@pytest.mark.parametrize(
    "fields",
    [
        {"output_url": URL},  # no key to report
        {"output_key": "job_1/a.mp3"},  # a key without a URL
        {"source_url": URL},  # an upload URL for the volume store
        {"output_url": URL.replace("http:", "ftp:"), "output_key": "k"},
        {"output_url": URL, "output_key": "k", "source_url": "file:///etc/passwd?" + SIGNATURE},
    ],
)
def test_settings_refuse_incomplete_or_non_http_presigned_urls(fields: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        WorkerSettings(**fields)  # type: ignore[arg-type]


def test_invalid_settings_are_logged_without_their_values(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AUDIO_EXTRACT_WORKER_OUTPUT_URL", URL)
    monkeypatch.setenv("AUDIO_EXTRACT_WORKER_SOURCE_URL", URL.replace("http:", "gopher:"))
    monkeypatch.setenv("AUDIO_EXTRACT_WORKER_ALLOW_CIDRS", "not-a-cidr")
    with caplog.at_level(logging.DEBUG):
        assert entry._settings() is None
    text = caplog.text
    assert "source_url" in text and "http" in text, text
    assert SIGNATURE not in text and "X-Amz" not in text, text


def test_valid_settings_take_the_urls_out_of_the_environment_children_inherit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUDIO_EXTRACT_WORKER_OUTPUT_URL", URL)
    monkeypatch.setenv("AUDIO_EXTRACT_WORKER_OUTPUT_KEY", "job_1/a.mp3")
    monkeypatch.setenv("AUDIO_EXTRACT_WORKER_SOURCE_URL", URL)
    settings = entry._settings()
    assert settings is not None and settings.output_url is not None
    assert settings.output_url.get_secret_value() == URL and settings.output_key == "job_1/a.mp3"
    assert "AUDIO_EXTRACT_WORKER_OUTPUT_URL" not in os.environ
    assert "AUDIO_EXTRACT_WORKER_SOURCE_URL" not in os.environ
    assert os.environ["AUDIO_EXTRACT_WORKER_OUTPUT_KEY"] == "job_1/a.mp3"  # a key is no secret
