"""With an object store, every Job carries the URLs the operator presigned for it, against a real
S3 server: they write that job's output and read its upload, and nothing else, without
credentials; a Job created again keeps its URLs; a Job that waited for admission past what its
URLs allow is made again with fresh ones instead of running with URLs that could expire."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import kopf
import pytest
from operator_fakeapi import NS, FakeApi, job_name

from audio_extract_common import ids
from audio_extract_common.objectstore import S3Store
from audio_extract_common.timefmt import iso, parse
from audio_extract_operator import handlers, loops, metrics
from audio_extract_operator.jobs import ADMIT_BY_ANNOTATION
from audio_extract_operator.state import OperatorState
from support.operator_settings import operator_settings
from support.s3_server import S3Server

UPLOAD = "upl_00112233445566ff"
JOBS = [
    {"source": {"type": "upload", "file": UPLOAD}, "output": {"format": "flac"}},
    {"source": {"type": "url", "url": "https://cdn.example.org/a.mp4"}, "output": {"format": "mp3"}},
]


class Operator:
    def __init__(self, api: FakeApi, storage: S3Store, **settings: Any) -> None:
        values = {
            "progress__port": 0,
            "store__type": "s3",
            "store__s3": storage.settings,
            "admission__max_running": 4,
            "worker__active_deadline_seconds": 1800,
            "store__presign_queue_allowance_seconds": 3600,
            **settings,
        }
        self.api = api
        self.settings = operator_settings(**values)
        self.state = OperatorState(self.settings, api, storage)
        self.memo = kopf.Memo()
        self.memo.state = self.state

    async def create(self, name: str) -> dict[str, Any]:
        body = self.api.add_batch(name, jobs=len(JOBS))
        self.api.edit("extractionbatches", NS, name, {"spec": {"jobs": JOBS}})
        body = self.api.get("extractionbatches", NS, name)
        self.state.registry.observe_batch(body)
        await self.state.reconciler.batch(body)
        return body

    async def admit(self) -> None:
        await loops.admission_pass(self.api, self.settings, self.state.registry, self.state.reconciler)


@pytest.fixture
async def storage(s3_server: S3Server) -> AsyncIterator[S3Store]:
    async with S3Store(s3_server.settings(prefix=f"op-{uuid.uuid4().hex[:10]}")) as opened:
        yield opened


def env(job: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}


async def test_the_urls_write_the_jobs_output_and_read_its_upload_only(storage: S3Store) -> None:
    op = Operator(FakeApi(), storage)
    await storage.put_bytes(f"uploads/{UPLOAD}", b"the uploaded video")
    await storage.put_bytes("uploads/upl_00000000000000aa", b"another tenant's video")
    body = await op.create("b")
    key = ids.batch_key("b", body["metadata"]["uid"])
    first, second = (env(op.api.get("jobs", NS, job_name(body, i))) for i in (0, 1))
    output_key = f"{ids.job_id(key, 0)}/audio.flac"
    assert first["AUDIO_EXTRACT_WORKER_OUTPUT_KEY"] == output_key
    assert second["AUDIO_EXTRACT_WORKER_OUTPUT_KEY"] == f"{ids.job_id(key, 1)}/audio.mp3"
    assert "AUDIO_EXTRACT_WORKER_SOURCE_URL" not in second  # a URL source needs none
    async with httpx.AsyncClient() as client:  # no credentials: what a worker pod has
        source = await client.get(first["AUDIO_EXTRACT_WORKER_SOURCE_URL"])
        assert source.status_code == 200 and source.content == b"the uploaded video"
        put = await client.put(
            first["AUDIO_EXTRACT_WORKER_OUTPUT_URL"],
            content=b"fLaC...",
            headers={"Content-Type": "audio/flac"},
        )
        assert put.status_code == 200
        # the URL is for that object alone: another key with its signature is refused
        other = first["AUDIO_EXTRACT_WORKER_OUTPUT_URL"].replace(ids.job_id(key, 0), ids.job_id(key, 1))
        assert (await client.put(other, content=b"x")).status_code == 403
    assert b"".join([c async for c in storage.stream(output_key)]) == b"fLaC..."
    assert await storage.size(f"{ids.job_id(key, 1)}/audio.mp3") is None


async def test_a_job_created_again_keeps_the_urls_it_was_made_with(storage: S3Store) -> None:
    api = FakeApi()
    op = Operator(api, storage)
    body = await op.create("b")
    before = api.get("jobs", NS, job_name(body, 0))
    await op.state.reconciler.batch(api.get("extractionbatches", NS, "b"))  # a resume, a retried handler
    restarted = Operator(api, storage)  # a new process: nothing in its registry, "already exists"
    await restarted.state.reconciler.batch(api.get("extractionbatches", NS, "b"))
    after = api.get("jobs", NS, job_name(body, 0))
    assert after["metadata"]["uid"] == before["metadata"]["uid"] and env(after) == env(before)
    assert (NS, job_name(body, 0)) in restarted.state.registry.jobs


async def test_the_urls_last_the_deadline_plus_the_queue_allowance(storage: S3Store) -> None:
    op = Operator(
        FakeApi(), storage, worker__active_deadline_seconds=1800, store__presign_queue_allowance_seconds=3600
    )
    made = datetime.now(UTC)
    body = await op.create("b")
    job = op.api.get("jobs", NS, job_name(body, 0))
    admit_by = parse(job["metadata"]["annotations"][ADMIT_BY_ANNOTATION])
    assert abs((admit_by - made).total_seconds() - 3600) <= 2
    url = httpx.URL(env(job)["AUDIO_EXTRACT_WORKER_OUTPUT_URL"])
    assert url.params["X-Amz-Expires"] == str(1800 + 3600)


async def test_a_job_that_waited_past_its_urls_allowance_is_made_again_before_it_runs(
    storage: S3Store,
) -> None:
    api = FakeApi()
    op = Operator(api, storage, admission__max_running=1)
    body = await op.create("b")
    name = job_name(body, 1)
    old = api.get("jobs", NS, name)
    # it waited: its URLs no longer cover a whole deadline from now
    waited = api.edit(
        "jobs",
        NS,
        name,
        {"metadata": {"annotations": {ADMIT_BY_ANNOTATION: iso(datetime.now(UTC) - timedelta(seconds=5))}}},
    )
    op.state.registry.observe_job(waited)
    await op.admit()  # job 0 (first in the queue) runs
    api.finish_job(NS, job_name(body, 0), "Complete", None)
    await handlers.job_event(type="MODIFIED", body=api.get("jobs", NS, job_name(body, 0)), memo=op.memo)
    errors = metrics.RECONCILE_ERRORS.labels("admission")._value.get()
    await op.admit()  # job 1's turn: made again, not admitted
    new = api.get("jobs", NS, name)
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    assert new["spec"]["suspend"] is True
    # signed afresh: valid for a whole allowance again (the URL itself may read the same when
    # signed within the same second as the first)
    assert parse(new["metadata"]["annotations"][ADMIT_BY_ANNOTATION]) > datetime.now(UTC) + timedelta(
        minutes=59
    )
    entries = api.get("extractionbatches", NS, "b")["status"]["jobs"]
    assert entries[1]["status"] == "queued"
    assert metrics.RECONCILE_ERRORS.labels("admission")._value.get() == errors
    await op.admit()  # and then admitted, with its fresh URLs
    assert api.get("jobs", NS, name)["spec"]["suspend"] is False
    assert api.get("jobs", NS, name)["metadata"]["uid"] == new["metadata"]["uid"]
    assert api.get("extractionbatches", NS, "b")["status"]["jobs"][1]["status"] == "processing"


async def test_the_store_usage_is_counted_under_the_prefix_only(
    storage: S3Store, s3_server: S3Server
) -> None:
    await storage.put_bytes("job_0123456789abcd01/audio.mp3", b"x" * 1000)
    await storage.put_bytes(f"uploads/{UPLOAD}", b"y" * 24)
    async with S3Store(s3_server.settings(prefix=f"op-{uuid.uuid4().hex[:10]}")) as neighbour:
        await neighbour.put_bytes("job_0123456789abcd02/audio.mp3", b"z" * 5000)
        assert await metrics.measure_store_usage(storage) == (2, 1024)
    assert metrics.STORE_OBJECTS._value.get() == 2 and metrics.STORE_USED._value.get() == 1024
