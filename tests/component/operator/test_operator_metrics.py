"""The operator's metrics (``metrics``), read from its registry and from ``GET /metrics`` while the
operator's handlers and admission loop run unchanged on the in-memory API server: the queue,
admitted and running gauges move with admission and the Jobs' pods, outcomes count once by error
code and tenant, the worker's step timings reach the status and the duration histograms, the
admission wait and the Job → status latency are observed, failed steps count as reconcile errors.

The registry is the process's one registry, so every check compares against a value read before.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from operator_fakeapi import NS, FakeApi, job_name
from prometheus_client.parser import text_string_to_metric_families
from test_operator_job_deleted import Operator

from audio_extract_common import ids
from audio_extract_common.batch_status import ErrorCode, JobError, OutputFile, StepTimings
from audio_extract_common.results import WorkerResult
from audio_extract_common.timefmt import iso, now
from audio_extract_operator import metrics
from audio_extract_operator.progress import Progress

TENANT = "acme-media"
OUT = OutputFile(filename="a.mp3", path="job_x/a.mp3", size=10, format="mp3", duration=1.0)
TIMINGS = StepTimings(download=1.25, probe=0.1, encode=3.5, store=0.05)


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def jobs_gauge(state: str, priority: str = "normal") -> float:
    return value("audio_extract_operator_jobs", state=state, priority=priority)


@pytest.fixture
def watched() -> Iterator[None]:
    yield
    metrics.watch(None, None)


async def create(op: Operator, api: FakeApi, name: str, jobs: int, **spec) -> dict:
    body = api.add_batch(name, jobs, **spec)
    api.objects[("extractionbatches", NS, name)]["metadata"]["labels"] = {ids.TENANT_LABEL: TENANT}
    body = api.get("extractionbatches", NS, name)
    op.state.registry.observe_batch(body)
    await op.state.reconciler.batch(body)
    return body


def finished(api: FakeApi, body: dict, index: int, condition: str, result: WorkerResult) -> dict:
    """The Job ended (with its condition's transition time, which the latency is measured from)."""
    name = job_name(body, index)
    api.finish_job(NS, name, condition, result)
    cond = {"type": condition, "status": "True", "reason": "", "lastTransitionTime": iso(now())}
    return api.edit("jobs", NS, name, {"status": {"conditions": [cond], "ready": 0}})


async def test_gauges_outcomes_timings_and_latencies_follow_a_batch(watched) -> None:
    api = FakeApi()
    op = Operator(api, admission__max_running=1)
    metrics.watch(op.state.registry, None)
    completed = value("audio_extract_operator_job_outcomes_total", status="completed", code="", tenant=TENANT)
    no_audio = value(
        "audio_extract_operator_job_outcomes_total", status="failed", code="NO_AUDIO_STREAM", tenant=TENANT
    )
    admitted = value("audio_extract_operator_jobs_admitted_total", priority="normal", tenant=TENANT)
    waits = value("audio_extract_operator_admission_wait_seconds_count", priority="normal")
    encodes = value("audio_extract_operator_job_duration_seconds_count", format="wav", step="encode")
    encode_sum = value("audio_extract_operator_job_duration_seconds_sum", format="wav", step="encode")
    totals = value("audio_extract_operator_job_duration_seconds_count", format="wav", step="total")
    latencies = value("audio_extract_operator_status_latency_seconds_count")

    body = await create(op, api, "b", jobs=3)
    assert (jobs_gauge("queued"), jobs_gauge("admitted"), jobs_gauge("running")) == (3, 0, 0)

    await op.admit()  # admission__max_running=1
    assert (jobs_gauge("queued"), jobs_gauge("admitted"), jobs_gauge("running")) == (2, 1, 0)
    assert (
        value("audio_extract_operator_jobs_admitted_total", priority="normal", tenant=TENANT) == admitted + 1
    )
    assert value("audio_extract_operator_admission_wait_seconds_count", priority="normal") == waits + 1

    # its pod starts: admitted becomes running
    await op.job_event(
        "MODIFIED", api.edit("jobs", NS, job_name(body, 0), {"status": {"active": 1, "ready": 1}})
    )
    assert (jobs_gauge("queued"), jobs_gauge("admitted"), jobs_gauge("running")) == (2, 0, 1)

    await op.job_event(
        "MODIFIED", finished(api, body, 0, "Complete", WorkerResult(output=OUT, timings=TIMINGS))
    )
    entry = op.entries("b")[0]
    assert entry["status"] == "completed" and entry["timings"] == TIMINGS.model_dump(), entry
    assert value("audio_extract_operator_job_outcomes_total", status="completed", code="", tenant=TENANT) == (
        completed + 1
    )
    assert (
        value("audio_extract_operator_job_duration_seconds_count", format="wav", step="encode") == encodes + 1
    )
    assert value(
        "audio_extract_operator_job_duration_seconds_sum", format="wav", step="encode"
    ) == pytest.approx(encode_sum + 3.5)
    assert (
        value("audio_extract_operator_job_duration_seconds_count", format="wav", step="total") == totals + 1
    )
    assert value("audio_extract_operator_status_latency_seconds_count") == latencies + 1
    assert (jobs_gauge("queued"), jobs_gauge("running")) == (2, 0)

    # a repeated event of the same outcome counts nothing more
    await op.job_event("MODIFIED", api.get("jobs", NS, job_name(body, 0)))
    assert value("audio_extract_operator_job_outcomes_total", status="completed", code="", tenant=TENANT) == (
        completed + 1
    )

    await op.admit()
    failure = WorkerResult(
        error=JobError(code=ErrorCode.NO_AUDIO_STREAM, message="no audio"), timings=TIMINGS
    )
    await op.job_event("MODIFIED", finished(api, body, 1, "Failed", failure))
    assert op.entries("b")[1]["timings"]["download"] == 1.25
    assert value(
        "audio_extract_operator_job_outcomes_total", status="failed", code="NO_AUDIO_STREAM", tenant=TENANT
    ) == (no_audio + 1)
    assert (jobs_gauge("queued"), jobs_gauge("admitted")) == (1, 0)
    await op.admit()
    assert (jobs_gauge("queued"), jobs_gauge("admitted")) == (0, 1)


async def test_cancelled_jobs_count_with_their_code_and_leave_the_queue(watched) -> None:
    api = FakeApi()
    op = Operator(api, admission__max_running=1)
    metrics.watch(op.state.registry, None)
    before = value(
        "audio_extract_operator_job_outcomes_total", status="cancelled", code="CANCELLED", tenant=TENANT
    )
    body = await create(op, api, "c", jobs=2)
    assert jobs_gauge("queued") == 2
    await op.state.reconciler.batch(api.edit("extractionbatches", NS, "c", {"spec": {"cancel": True}}))
    after = value(
        "audio_extract_operator_job_outcomes_total", status="cancelled", code="CANCELLED", tenant=TENANT
    )
    assert after == before + 2
    assert jobs_gauge("queued") == 0  # blocked while their Jobs go
    assert body


async def test_priorities_are_gauged_apart(watched) -> None:
    api = FakeApi()
    op = Operator(api, admission__max_running=1)
    metrics.watch(op.state.registry, None)
    high = {"source": {"type": "url", "url": "https://m.example.com/v.mp4"}, "output": {"format": "flac"}}
    high["options"] = {"priority": "high"}
    api.add_batch("p", 1)
    api.objects[("extractionbatches", NS, "p")]["spec"]["jobs"] = [high]
    body = api.get("extractionbatches", NS, "p")
    op.state.registry.observe_batch(body)
    await op.state.reconciler.batch(body)
    assert jobs_gauge("queued", "high") == 1 and jobs_gauge("queued", "normal") == 0


async def test_a_failing_step_counts_as_a_reconcile_error(watched) -> None:
    api = FakeApi()
    op = Operator(api)
    before = value("audio_extract_operator_reconcile_errors_total", where="retention")

    async def broken() -> None:
        raise RuntimeError("odd object")

    from audio_extract_operator import loops

    await loops._isolated(broken(), "retention of", {"namespace": NS, "name": "x"})
    assert value("audio_extract_operator_reconcile_errors_total", where="retention") == before + 1
    assert op


async def test_the_endpoint_serves_the_registry_with_the_store_measured(tmp_path, watched) -> None:
    api = FakeApi()
    op = Operator(api, store__root=tmp_path)
    metrics.watch(op.state.registry, None)
    await create(op, api, "m", jobs=2)
    progress = Progress(op.settings, op.state.registry, op.state.writer)
    async with TestClient(TestServer(progress.app())) as client:
        reply = await client.get("/metrics")
        assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/plain")
        text = await reply.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    queued = [s for s in families["audio_extract_operator_jobs"].samples if s.labels["state"] == "queued"]
    assert sum(s.value for s in queued) == 2
    for name in ("store_size_bytes", "store_used_bytes", "store_free_bytes"):
        assert families[f"audio_extract_operator_{name}"].samples[0].value > 0, name
    assert "audio_extract_operator_leader" in families
    assert "process_cpu_seconds" in families  # the replica's own CPU and memory
