"""The worker's environment model alone: rendered to a Job's ``env`` and read back unchanged, its
presigned URLs never shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from audio_extract_common.worker_env import ENV_PREFIX, WorkerEnv

OUTPUT_URL = "https://s3.example.org/media/job_1/audio.mp3?X-Amz-Signature=put"
SOURCE_URL = "https://s3.example.org/media/uploads/upl_1?X-Amz-Signature=get"


def every_field() -> WorkerEnv:
    return WorkerEnv(
        job='{"jobId":"job_0123456789abcd00"}',
        store_root=Path("/media"),
        output_url=SecretStr(OUTPUT_URL),
        output_key="job_1/audio.mp3",
        source_url=SecretStr(SOURCE_URL),
        scratch_dir=Path("/work/scratch"),
        result_path=Path("/work/result"),
        allow_cidrs="10.0.0.0/8",
        connect_timeout=1.5,
        read_timeout=4.0,
        max_source_bytes=1000,
        max_source_seconds=60.5,
        max_output_bytes=2000,
        log_format="json",
        tenant="acme-media",
        progress_url="http://operator:8081/progress",
        progress_token="t0ken",
    )


def as_environ(env: list[dict[str, str]]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in env}


def test_every_field_round_trips() -> None:
    model = every_field()
    assert model.model_fields_set == set(WorkerEnv.model_fields)
    environ = as_environ(model.to_env())
    assert environ[ENV_PREFIX + "OUTPUT_URL"] == OUTPUT_URL
    assert environ[ENV_PREFIX + "CONNECT_TIMEOUT"] == "1.5"
    assert environ["TMPDIR"] == "/work/scratch"
    assert WorkerEnv.from_environ(environ) == model


def test_a_field_left_unset_is_no_variable_and_the_worker_takes_its_default() -> None:
    model = WorkerEnv(job="{}", tenant=None)
    assert model.to_env() == [
        {"name": ENV_PREFIX + "JOB", "value": "{}"},
        {"name": "TMPDIR", "value": "/scratch"},
    ]
    assert WorkerEnv.from_environ(as_environ(model.to_env())).connect_timeout == 10.0


def test_values_given_win_over_the_environment_and_names_are_read_in_any_case() -> None:
    environ = {"audio_extract_worker_tenant": "a", ENV_PREFIX + "LOG_FORMAT": "json", "TENANT": "other"}
    assert WorkerEnv.from_environ(environ).tenant == "a"
    assert WorkerEnv.from_environ(environ, log_format="text").log_format == "text"


def test_the_presigned_urls_are_secrets() -> None:
    model = every_field()
    assert OUTPUT_URL not in repr(model) and SOURCE_URL not in repr(model)
    assert WorkerEnv.secret_variables() == (ENV_PREFIX + "OUTPUT_URL", ENV_PREFIX + "SOURCE_URL")
    bad = "gopher://s3.example.org/x?X-Amz-Signature=secret"
    with pytest.raises(ValidationError) as e:
        WorkerEnv(output_url=bad, output_key="k")  # type: ignore[arg-type]
    # what the worker logs of it (the error's own text quotes the input)
    assert "secret" not in str(e.value.errors(include_url=False, include_input=False, include_context=False))


@pytest.mark.parametrize(
    "fields",
    [{"output_url": OUTPUT_URL}, {"source_url": SOURCE_URL}, {"allow_cidrs": "not-a-cidr"}],
)
def test_inconsistent_environments_are_refused(fields: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        WorkerEnv(**fields)  # type: ignore[arg-type]
