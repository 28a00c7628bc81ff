"""The client's pure parts: retry decisions, the error classes made from the API's table, resuming
downloads, which way an upload goes, the command's configuration and its batches."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from audio_extract_client import calls, errors
from audio_extract_client.cli import config, plan
from audio_extract_client.cli.app import UploadMode
from audio_extract_client.downloads import resume
from audio_extract_client.retry import RetryPolicy, new_idempotency_key
from audio_extract_common.api_errors import API_ERROR_SPECS
from audio_extract_common.retry_after import retry_after_seconds


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2026, 1, 21, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("30") == 30.0
    assert retry_after_seconds("Wed, 21 Jan 2026 12:00:45 GMT", now) == 45.0
    assert retry_after_seconds("Wed, 21 Jan 2026 11:00:00 GMT", now) == 0.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None


def test_the_policy_honours_retry_after_and_stops_at_its_bounds() -> None:
    policy = RetryPolicy(attempts=4, backoff=0.5, max_delay=60, budget=100)
    assert [policy.delay(n, 0, None) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert policy.delay(4, 0, None) is None  # the 4th attempt was the last
    assert policy.delay(1, 0, 30) == 30  # never sooner than asked
    assert policy.delay(1, 0, 61) is None  # longer than max_delay: give up rather than come early
    assert policy.delay(2, 80, 30) is None  # over the budget


def test_an_upload_goes_direct_where_the_service_presigns_and_else_streamed() -> None:
    cannot_presign = errors.InvalidRequest("no presigned URLs here")
    route = calls.UploadRoute()
    assert route.asks_direct(None, 10) and route.asks_direct(True, 10) and not route.asks_direct(False, 10)
    assert not route.asks_direct(None, 0)  # an empty file cannot be declared: the API answers it streamed
    assert not route.streams_after(None, errors.QuotaExceeded("full"))  # any other refusal is raised
    assert route.asks_direct(None, 10)
    assert not route.streams_after(True, cannot_presign)  # direct only: raised
    assert not route.asks_direct(None, 10) and route.asks_direct(True, 10)  # but learnt
    other = calls.UploadRoute()
    assert other.streams_after(None, cannot_presign) and not other.asks_direct(None, 10)
    assert [m.direct_arg for m in UploadMode] == [None, True, False]


def test_idempotency_keys_are_new_per_submission_and_valid_header_values() -> None:
    keys = {new_idempotency_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(len(k) <= 255 and all(0x21 <= ord(c) <= 0x7E for c in k) for k in keys)


def test_every_api_error_code_has_its_class_under_a_family() -> None:
    for spec in API_ERROR_SPECS:
        cls = errors.BY_CODE[spec.code]
        assert issubclass(cls, errors.ApiError) and cls.code == spec.code
    assert issubclass(errors.QueueFull, errors.Unavailable) and issubclass(
        errors.InvalidSource, errors.RequestRefused
    )
    e = errors.from_response(
        400,
        {
            "success": False,
            "error": {
                "code": "INVALID_OUTPUT",
                "message": "bad",
                "details": [{"field": "output.bitrate", "message": "no"}],
            },
        },
        {},
    )
    assert type(e) is errors.InvalidOutput and e.details[0]["field"] == "output.bitrate"
    failed = errors.from_response(
        409, {"success": False, "error": {"code": "NO_AUDIO_STREAM", "message": "x"}}, {}
    )
    assert isinstance(failed, errors.JobFailed) and failed.job_code == "NO_AUDIO_STREAM"
    assert isinstance(errors.from_response(502, "<html>", {}), errors.ServerError)


def test_a_range_answer_says_where_the_bytes_go() -> None:
    assert resume(206, "bytes 100-199/200", "100", 100).offset == 100
    assert resume(200, None, "200", 100).offset == 0  # Range ignored: start over
    assert resume(416, "bytes */200", None, 200).done
    assert not resume(416, "bytes */200", None, 300).done
    with pytest.raises(ValueError):
        resume(206, "bytes 0-199/200", "200", 100)


def test_configuration_comes_from_flags_then_environment_then_dev_env(tmp_path: Path) -> None:
    dev = config.parse_env_file(
        "# written by make dev\nPATH=/x:$PATH\nAUDIO_EXTRACT_API_URL=http://10.99.0.1:30080\n"
        "AUDIO_EXTRACT_API_KEY='axk_dev'\n"
    )
    assert "PATH" not in dev
    assert config.resolve(None, None, {}, dev) == config.Config("http://10.99.0.1:30080", "axk_dev")
    env = {"AUDIO_EXTRACT_API_URL": "http://env/", "AUDIO_EXTRACT_API_KEY": "axk_env"}
    assert config.resolve(None, None, env, dev) == config.Config("http://env", "axk_env")
    assert config.resolve("http://flag", "axk_flag", env, dev) == config.Config("http://flag", "axk_flag")
    with pytest.raises(config.ConfigError, match="AUDIO_EXTRACT_API_KEY"):
        config.resolve("http://flag", None, {}, {})
    (tmp_path / ".local").mkdir()
    (tmp_path / ".local" / "dev.env").write_text("AUDIO_EXTRACT_API_KEY=k\n")
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert config.find_dev_env(tmp_path / "a" / "b") == tmp_path / ".local" / "dev.env"


def test_sources_are_split_into_batches_of_ten_and_local_files_named_after_themselves(tmp_path: Path) -> None:
    video = tmp_path / "talk.mp4"
    video.write_bytes(b"x")
    items = plan.classify([str(video)] + [f"https://m.example/{i}.mp4" for i in range(24)])
    assert items[0].path == video and items[1].url == "https://m.example/0.mp4"
    assert [len(c) for c in plan.chunks(items)] == [10, 10, 5]
    output = plan.output_of("mp3", "high", normalize=True)
    assert plan.job_of(items[0], output, "upl_0123456789abcdef") == {
        "source": {"type": "upload", "file": "upl_0123456789abcdef"},
        "output": {"format": "mp3", "quality": "high", "normalize": True},
        "options": {"filename": "talk"},
    }
    with pytest.raises(ValueError, match="neither"):
        plan.classify([str(tmp_path / "missing.mp4")])


def test_manifests_give_batch_bodies_from_spec() -> None:
    sample = (Path(__file__).parents[3] / "crds" / "samples" / "batch-mp3-flac.yaml").read_text()
    [body] = plan.batches_of_manifest(sample)
    assert len(body["jobs"]) == 2 and body["jobs"][0]["output"]["format"] == "mp3" and "metadata" not in body
    many = {
        "jobs": [{"source": {"type": "url", "url": "https://a/b.mp4"}, "output": {"format": "wav"}}] * 12,
        "webhook": "https://hooks.example/x",
    }
    parts = plan.batches_of_manifest(json.dumps(many))
    assert [len(p["jobs"]) for p in parts] == [10, 2] and all(p["webhook"] == many["webhook"] for p in parts)
    with pytest.raises(plan.ManifestError, match="cancel"):
        plan.batches_of_manifest("spec: {jobs: [{}], cancel: true}")
