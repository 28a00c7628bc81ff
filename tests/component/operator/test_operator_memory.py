"""The operator's memory does not grow with the batches it retains: what it keeps per batch is what
its decisions need, lists are read in pages, and per-batch maps are emptied once a batch is quiet.

The whole-process figure (RSS with 20,000 retained terminal batches ≤ 300 MiB) is
``bench/bench_operator.py --retained``, on the local cluster; these tests pin the causes."""

from __future__ import annotations

import asyncio
import gc
import json
import tracemalloc
from typing import Any

import kopf
from operator_fakeapi import NS, FakeApi, terminal_status

from audio_extract_common import ids
from audio_extract_common.batch_status import BatchStatus, JobStatus
from audio_extract_common.results import ProgressReport
from audio_extract_operator import handlers, loops
from audio_extract_operator.progress import Progress
from audio_extract_operator.reconcile import Reconciler
from audio_extract_operator.registry import Registry
from audio_extract_operator.statuswriter import StatusWriter
from support.operator_settings import operator_settings


def batch_json(i: int) -> str:
    """One batch as the watch delivers it: its own objects (parsed from JSON), nothing shared."""
    key = f"{i:014x}"
    return json.dumps(
        {
            "apiVersion": "audioextract.io/v1",
            "kind": "ExtractionBatch",
            "metadata": {
                "name": ids.batch_object_name(key),
                "namespace": NS,
                "uid": f"uid-{i}",
                "resourceVersion": str(1000 + i),
                "generation": 1,
                "creationTimestamp": "2026-01-21T12:00:00Z",
                "labels": {ids.KEY_LABEL: key},
                "annotations": {"audioextract.io/last-handled-configuration": "x" * 600},
            },
            "spec": {
                "jobs": [
                    {
                        "source": {"type": "url", "url": f"https://cdn.example.org/{i}/{j}.mp4"},
                        "output": {"format": "mp3"},
                    }
                    for j in range(10)
                ]
            },
            "status": terminal_status(key),
        }
    )


def test_the_registry_keeps_a_few_hundred_bytes_per_retained_batch() -> None:
    registry = Registry()
    n = 2000
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            registry.observe_batch(json.loads(batch_json(i)))
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # a whole body is ~10 KiB as JSON, several times that as Python objects
    assert kept / n < 1024, f"{kept / n:.0f} bytes kept per batch"
    assert registry.keys[f"{5:014x}"] == (NS, ids.batch_object_name(f"{5:014x}"))


async def test_lists_are_read_in_pages() -> None:
    api = FakeApi()
    settings = operator_settings(list_page_size=50, retention__record_seconds=0, progress__port=0)
    for i in range(120):
        body = api.add_batch(f"b{i:03d}", jobs=1)
        key = ids.batch_key(body["metadata"]["name"], body["metadata"]["uid"])
        api.edit("extractionbatches", NS, f"b{i:03d}", {"status": terminal_status(key, 1)})
    registry = Registry()
    writer = StatusWriter(api, settings, registry)
    await loops.sync_jobs(api, settings, registry)
    await loops.retention_pass(api, settings, registry, Reconciler(api, settings, registry, writer))
    assert api.names("extractionbatches") == []  # every page was read: all 120 past retention
    for kind in ("extractionbatches", "jobs"):
        queries = api.lists(kind)
        assert queries and all(q.get("limit") == "50" for q in queries), (kind, queries)
    assert len(api.lists("extractionbatches")) == 3


def test_kopf_lists_in_pages_too() -> None:
    """kopf's own initial listing (every batch at start-up) is one response unless told otherwise."""
    settings = kopf.OperatorSettings()
    handlers.configure(settings, operator_settings(list_page_size=250))
    assert settings.watching.chunk_size == 250


def test_kopf_workers_let_go_of_a_body_soon() -> None:
    """kopf hands each listed object to its own worker at once, and an idle worker keeps its last
    body until ``idle_timeout``: with kopf's 5 s, a start-up listing of 20,000 batches held
    thousands of bodies at once (``bench/bench_kopf_listing.py``: 373 MiB peak, 122 MiB at 0.5 s)."""
    settings = kopf.OperatorSettings()
    handlers.configure(settings, operator_settings())
    assert settings.queueing.idle_timeout <= 1.0


def _maps(obj: object) -> dict[str, int]:
    return {k: len(v) for k, v in vars(obj).items() if isinstance(v, dict | set)}


async def test_progress_forgets_a_batch_once_its_reports_are_written() -> None:
    class Writer:
        async def update(self, _ns: str, _name: str, change: Any) -> None:
            change({}, BatchStatus(jobs=[JobStatus(index=0, jobId="j", jobName="j", status="processing")]))

    progress = Progress(operator_settings(progress__flush_interval=0.05), Registry(), Writer())  # type: ignore[arg-type]
    for i in range(50):
        progress.submit(
            (NS, f"b{i}"),
            0,
            ProgressReport(jobId=ids.job_id(f"{i:014x}", 0), step="extracting_audio", progress=10),
        )
    for _ in range(100):
        await asyncio.sleep(0.02)
        if not progress._tasks:
            break
    await asyncio.sleep(0.1)
    assert not any(_maps(progress).values()), _maps(progress)


def _one_job(state: str) -> Any:
    def change(_b: Any, s: BatchStatus) -> BatchStatus:
        done = {"completedAt": "2026-01-01T00:00:00Z"} if state == "completed" else {}
        return s.model_copy(
            update={"jobs": [JobStatus(index=0, jobId="j", jobName="j", status=state, **done)]}
        )

    return change


async def test_the_status_writer_keeps_nothing_for_a_batch_once_it_is_finished_or_gone() -> None:
    """It keeps the last object of an unfinished batch (its next write needs no read), so what it
    holds is bounded by the work in flight, not by the batches retained."""
    api = FakeApi()
    settings = operator_settings(progress__port=0)
    writer = StatusWriter(api, settings, Registry())
    for i in range(20):
        api.add_batch(f"b{i}")
    await asyncio.gather(*(writer.update(NS, f"b{i}", _one_job("processing")) for i in range(20)))
    assert _maps(writer) == {"_waiting": 0, "_latest": 20} and len(writer._locks) == 0

    await asyncio.gather(*(writer.update(NS, f"b{i}", _one_job("completed")) for i in range(10)))
    for i in range(10, 20):
        writer.observe(api.delete_by_hand("extractionbatches", NS, f"b{i}"), deleted=True)
    assert not any(_maps(writer).values()), _maps(writer)


async def test_resuming_a_finished_batch_costs_no_request() -> None:
    """At start-up kopf resumes every batch: 20,000 retained ones must not mean 20,000 reads."""
    api = FakeApi()
    settings = operator_settings(progress__port=0)
    body = api.add_batch("done", jobs=2)
    key = ids.batch_key(body["metadata"]["name"], body["metadata"]["uid"])
    body = api.edit("extractionbatches", NS, "done", {"status": terminal_status(key, 2)})
    registry = Registry()
    reconciler = Reconciler(api, settings, registry, StatusWriter(api, settings, registry))
    api.calls.clear()
    await reconciler.batch(body)
    assert api.calls == []


async def test_cancelling_jobs_that_never_had_a_job_leaves_nothing_behind() -> None:
    """Cancellation marks each Job not to admit before deleting it; a Job that never existed has no
    DELETED event to clear the mark: the next pass does."""
    api = FakeApi()
    settings = operator_settings(progress__port=0)
    registry = Registry()
    reconciler = Reconciler(api, settings, registry, StatusWriter(api, settings, registry))
    await reconciler.batch(api.add_batch("cancelled", jobs=3, cancel=True))
    await loops.retention_pass(api, settings, registry, reconciler)
    assert not registry.blocked and not registry.jobs
