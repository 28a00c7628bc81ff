"""The operator's JSON log lines (``log_format=json``): tenant, batchId and jobId on every line about
a batch or a job, kopf's per-object lines included, with the operator's handlers and admission loop
running on the in-memory API server (``operator_fakeapi``)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import kopf
import pytest
from kopf._core.actions.loggers import LocalObjectLogger, ObjectLogger
from operator_fakeapi import NS, FakeApi, job_name
from test_operator_job_deleted import Operator
from test_operator_log_tenant import TENANT, labelled

from audio_extract_common import ids
from audio_extract_common.jsonlog import JsonFormatter
from audio_extract_operator import logs


@pytest.fixture
def lines() -> Iterator[tuple[io.StringIO, logs.TenantFilter]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    tenant_filter = logs.TenantFilter()
    handler.addFilter(tenant_filter)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream, tenant_filter
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def parsed(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def batch_id(body: dict) -> str:
    return ids.batch_id(ids.batch_key(body["metadata"]["name"], body["metadata"]["uid"]))


async def test_lines_about_a_job_name_it_its_batch_and_tenant(lines) -> None:
    stream, tenant_filter = lines
    api = FakeApi()
    op = Operator(api)
    tenant_filter.book = op.state.registry
    body = labelled(api, "b", jobs=2)
    op.state.registry.observe_batch(body)
    await op.state.reconciler.batch(body)
    await op.admit()  # "admitted ..."
    await op.job_event("DELETED", api.delete_by_hand("jobs", NS, job_name(body, 0)))  # "... is gone"
    job0 = "job_" + job_name(body, 0).removeprefix("job-")
    admitted = [line for line in parsed(stream) if line["message"].startswith("admitted ")]
    gone = [line for line in parsed(stream) if "is gone" in line["message"]]
    assert admitted and gone
    for line in admitted + gone:
        assert (line["tenant"], line["batchId"], line["jobId"]) == (TENANT, batch_id(body), job0), line


async def test_kopf_lines_name_the_batch_or_the_job(lines) -> None:
    stream, tenant_filter = lines
    api = FakeApi()
    op = Operator(api)
    tenant_filter.book = op.state.registry
    body = labelled(api, "b")
    op.state.registry.observe_batch(body)
    await op.state.reconciler.batch(body)
    job = api.get("jobs", NS, job_name(body, 0))
    op.state.registry.observe_job(job)
    settings = kopf.OperatorSettings()
    ObjectLogger(body=body, settings=settings).warning("Handler 'reconcile_batch' failed temporarily")
    LocalObjectLogger(body=job, settings=settings).error("Handler 'job_event' failed with an exception")
    logging.getLogger("audio_extract_operator.loops").warning("listing our Jobs failed")
    about_batch, about_job, about_nothing = parsed(stream)[-3:]
    assert (about_batch["tenant"], about_batch["batchId"]) == (TENANT, batch_id(body))
    assert "jobId" not in about_batch
    job_id = "job_" + job_name(body, 0).removeprefix("job-")
    assert (about_job["tenant"], about_job["batchId"], about_job["jobId"]) == (TENANT, batch_id(body), job_id)
    assert {"tenant", "batchId", "jobId"}.isdisjoint(about_nothing)


def test_configure_switches_the_format() -> None:
    root = logging.getLogger()
    before, level = root.handlers, root.level
    handler = logging.StreamHandler(io.StringIO())
    root.handlers = [handler]  # only this one: configure changes every handler of the root logger
    try:
        logs.configure("INFO", "WARNING", "json")
        assert isinstance(handler.formatter, JsonFormatter) and logs.FILTER in handler.filters
    finally:
        root.handlers, root.level = before, level
