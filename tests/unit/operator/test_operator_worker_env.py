"""The worker's environment as the operator writes it into a Job and the worker reads it back: one
model (``audio_extract_common.worker_env``) on both sides, so nothing is lost or renamed between."""

from __future__ import annotations

import os

import pytest
from test_operator_jobs import batch, settings
from test_operator_jobs_s3 import s3_settings, urls

from audio_extract_common import ids
from audio_extract_common.batch_spec import BatchSpec
from audio_extract_common.worker_env import ENV_PREFIX, WorkerEnv
from audio_extract_operator.jobs import WorkerUrls, build_job, worker_env
from audio_extract_operator.settings import Settings
from audio_extract_worker.settings import WorkerSettings

TENANT = "acme-media"

CASES = {
    "volume": (lambda: settings(), None, None),
    "volume, every worker setting": (
        lambda: settings(
            log_format="json",
            worker__allow_cidrs="10.20.0.0/16,127.0.0.0/8",
            worker__connect_timeout=2.5,
            worker__read_timeout=7,
            worker__max_source_bytes=123_456,
            worker__max_source_seconds=90.5,
            worker__max_output_bytes=654_321,
            worker__scratch_mount_path="/work/scratch",
            store__mount_path="/media",
        ),
        TENANT,
        None,
    ),
    "volume, no progress": (lambda: settings(progress__url=None), None, None),
    "object store": (lambda: s3_settings(), TENANT, lambda: urls()),
    "object store, URL source": (lambda: s3_settings(), None, lambda: urls(source=False)),
}


def job_env(labelled: dict, index: int, s: Settings, u: WorkerUrls | None) -> list[dict[str, str]]:
    return build_job(labelled, index, s, u)["spec"]["template"]["spec"]["containers"][0]["env"]


@pytest.mark.parametrize("case", CASES)
def test_the_worker_reads_back_what_the_operator_wrote(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    make_settings, tenant, make_urls = CASES[case]
    s, u = make_settings(), make_urls() if make_urls else None
    labelled = batch()
    if tenant:
        labelled["metadata"]["labels"] = {ids.TENANT_LABEL: tenant}
    index = 1
    model = worker_env(
        BatchSpec.model_validate(labelled["spec"]), ids.derived_batch_key(labelled), index, s, tenant, u
    )

    env = job_env(labelled, index, s, u)
    assert env == model.to_env()
    variables = {e["name"]: e["value"] for e in env}
    assert variables["TMPDIR"] == variables[ENV_PREFIX + "SCRATCH_DIR"]

    parsed = WorkerEnv.from_environ(variables)
    assert parsed == model
    assert parsed.model_fields_set == model.model_fields_set  # no variable added or dropped on the way

    for name in [n for n in os.environ if n.upper().startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    worker = WorkerSettings()
    assert {name: getattr(worker, name) for name in WorkerEnv.model_fields} == dict(model)


def test_the_cases_set_every_variable() -> None:
    set_: set[str] = set()
    for make_settings, tenant, make_urls in CASES.values():
        labelled = batch()
        spec = BatchSpec.model_validate(labelled["spec"])
        u = make_urls() if make_urls else None
        set_ |= worker_env(
            spec, ids.derived_batch_key(labelled), 1, make_settings(), tenant, u
        ).model_fields_set
    assert set_ == set(WorkerEnv.model_fields)
