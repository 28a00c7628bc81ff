"""The progress endpoint over real HTTP (aiohttp test server): per-job HMAC tokens and coalescing."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from audio_extract_common import ids
from audio_extract_common.batch_status import BatchStatus, JobStatus, Step
from audio_extract_operator.progress import Progress, job_progress
from audio_extract_operator.registry import Registry
from audio_extract_operator.tokens import progress_token
from support.operator_settings import operator_settings

KEY = "0123456789abcd"
SECRET = "progress-secret"


class FakeWriter:
    """Applies changes to an in-memory status, counting writes."""

    def __init__(self) -> None:
        self.status = BatchStatus(
            jobs=[
                JobStatus(index=i, jobId=ids.job_id(KEY, i), jobName="x", status="processing")
                for i in range(2)
            ]
        )
        self.writes = 0

    async def update(self, namespace: str, name: str, change: Any) -> BatchStatus:
        new = change({}, self.status.model_copy(deep=True))
        if new is not None:
            self.status = new
            self.writes += 1
        return self.status


def report(index: int, progress: int, step: str = "extracting_audio") -> dict[str, Any]:
    return {"jobId": ids.job_id(KEY, index), "step": step, "progress": progress}


def auth(index: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {progress_token(SECRET, ids.job_id(KEY, index))}"}


async def make(interval: float = 0.3) -> tuple[TestClient, FakeWriter, Progress]:
    registry = Registry()
    registry.keys[KEY] = ("ns", "batch-x")
    writer = FakeWriter()
    progress = Progress(
        operator_settings(progress__secret=SECRET, progress__flush_interval=interval), registry, writer
    )  # type: ignore[arg-type]
    client = TestClient(TestServer(progress.app()))
    await client.start_server()
    return client, writer, progress


async def test_tokens_are_per_job() -> None:
    client, _, _ = await make()
    try:
        assert (await client.post("/progress", json=report(0, 5))).status == 401
        assert (await client.post("/progress", json=report(0, 5), headers=auth(1))).status == 401
        assert (
            await client.post("/progress", json=report(0, 5), headers={"Authorization": "Bearer x"})
        ).status == 401
        assert (await client.post("/progress", data=b"{", headers=auth(0))).status == 422
        foreign = {"jobId": "job_ffffffffffffff01", "step": "finalizing", "progress": 1}
        token = progress_token(SECRET, foreign["jobId"])
        r = await client.post("/progress", json=foreign, headers={"Authorization": f"Bearer {token}"})
        assert r.status == 404
        assert (await client.post("/progress", json=report(0, 5), headers=auth(0))).status == 202
    finally:
        await client.close()


async def test_bursts_are_coalesced_to_about_one_write_per_interval() -> None:
    client, writer, progress = await make(interval=0.3)
    try:
        for p in range(1, 41):
            assert (await client.post("/progress", json=report(p % 2, p), headers=auth(p % 2))).status == 202
        # the newest report per job wins, as whole-job progress (extracting_audio 40 % / 39 %)
        want = (job_progress(Step.extracting_audio, 40), job_progress(Step.extracting_audio, 39))
        for _ in range(100):  # the trailing flush lands one interval after the first
            if (writer.status.jobs[0].progress, writer.status.jobs[1].progress) == want:
                break
            await asyncio.sleep(0.05)
        assert (writer.status.jobs[0].progress, writer.status.jobs[1].progress) == want
        assert writer.writes <= 3, writer.writes
        assert progress.received == 40
    finally:
        await client.close()
        await progress.stop()
