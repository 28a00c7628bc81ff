"""The Job of an extraction with an object store: no store volume, only the URLs presigned for it
(given to the builder as data, so the manifest stays a pure function and is pinned here)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from test_operator_jobs import batch, check_golden, settings

from audio_extract_common.objectstore import S3Settings
from audio_extract_operator.jobs import ADMIT_BY_ANNOTATION, WorkerUrls, build_job
from audio_extract_operator.registry import JobInfo
from audio_extract_operator.worker_urls import object_key, stale

EXPIRES = datetime(2026, 1, 21, 20, 0, 0, tzinfo=UTC)
OUTPUT_URL = "https://s3.example.org/media/job_0123456789abcd02/audio.aac?X-Amz-Signature=put"
SOURCE_URL = "https://s3.example.org/media/uploads/upl_00112233445566ff?X-Amz-Signature=get"


def s3_settings(**kw: object) -> object:
    return settings(store__type="s3", store__s3=S3Settings(bucket="media"), **kw)


def urls(source: bool = True) -> WorkerUrls:
    return WorkerUrls(
        output_url=OUTPUT_URL,
        output_key=object_key("job_0123456789abcd02", "aac"),
        expires_at=EXPIRES,
        source_url=SOURCE_URL if source else None,
    )


def pod(job: dict) -> dict:
    return job["spec"]["template"]["spec"]


def env(job: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in pod(job)["containers"][0]["env"]}


def test_job_golden_s3_upload_source() -> None:
    check_golden("job-s3.yaml", build_job(batch(), 1, s3_settings(), urls()))


def test_the_worker_has_no_store_volume_only_its_urls() -> None:
    job = build_job(batch(), 1, s3_settings(), urls())
    spec = pod(job)
    assert [v["name"] for v in spec["volumes"]] == ["scratch"]
    assert [m["name"] for m in spec["containers"][0]["volumeMounts"]] == ["scratch"]
    values = env(job)
    assert values["AUDIO_EXTRACT_WORKER_OUTPUT_URL"] == OUTPUT_URL
    assert values["AUDIO_EXTRACT_WORKER_OUTPUT_KEY"] == "job_0123456789abcd02/audio.aac"
    assert values["AUDIO_EXTRACT_WORKER_SOURCE_URL"] == SOURCE_URL
    assert "AUDIO_EXTRACT_WORKER_STORE_ROOT" not in values
    # no credential of the store reaches the pod, whatever the operator's own settings hold
    assert not [n for n in values if "AWS" in n or "S3" in n]


def test_a_url_source_gets_no_source_url() -> None:
    values = env(build_job(batch(), 0, s3_settings(), urls(source=False)))
    assert "AUDIO_EXTRACT_WORKER_SOURCE_URL" not in values
    assert "AUDIO_EXTRACT_WORKER_OUTPUT_URL" in values


def test_the_job_records_when_it_must_be_admitted_by() -> None:
    """Its URLs expire at EXPIRES: admitted later than its deadline before that, it could outlive them."""
    job = build_job(batch(), 1, s3_settings(worker__active_deadline_seconds=1800), urls())
    assert job["metadata"]["annotations"][ADMIT_BY_ANNOTATION] == "2026-01-21T19:30:00Z"
    info = JobInfo.of({**job, "metadata": {**job["metadata"], "uid": "u"}})
    assert info is not None and info.admit_by == "2026-01-21T19:30:00Z"
    assert not stale(info.admit_by, datetime(2026, 1, 21, 19, 30, 0, tzinfo=UTC))
    assert stale(info.admit_by, datetime(2026, 1, 21, 19, 30, 1, tzinfo=UTC))
    assert not stale(None, datetime(2100, 1, 1, tzinfo=UTC))  # a volume's Job never goes stale
    assert ADMIT_BY_ANNOTATION not in build_job(batch(), 1, settings())["metadata"]["annotations"]


def test_urls_are_required_with_an_object_store_and_refused_with_a_volume() -> None:
    with pytest.raises(ValueError, match="s3 store"):
        build_job(batch(), 1, s3_settings())
    with pytest.raises(ValueError, match="volume store"):
        build_job(batch(), 1, settings(), urls())


def test_the_urls_never_show_in_a_repr() -> None:
    assert "Signature" not in repr(urls()) and "job_0123456789abcd02/audio.aac" in repr(urls())


def test_same_urls_same_job() -> None:
    assert build_job(batch(), 1, s3_settings(), urls()) == build_job(batch(), 1, s3_settings(), urls())
