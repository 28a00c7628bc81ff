"""End to end through the API on the local cluster: API → ExtractionBatch → operator → Job →
worker (real ffmpeg) → status → download, with the contract's example batches."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

STEPS = ["downloading_video", "analyzing_video", "extracting_audio", "finalizing"]
MEDIA_TYPES = {"mp3": "audio/mpeg", "flac": "audio/flac", "aac": "audio/aac"}
CODECS = {"mp3": "mp3", "flac": "flac", "aac": "aac"}


async def follow(api, job_ids: list[str], timeout: float = 240.0) -> dict[str, list[dict]]:
    """Poll every job's status until all are terminal; returns each job's observations."""
    seen: dict[str, list[dict]] = {j: [] for j in job_ids}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for j in job_ids:
            r = await api.get(f"/v1/status/{j}")
            assert r.status_code == 200, r.text
            seen[j].append(r.json()["data"])
        if all(obs[-1]["status"] in ("completed", "failed", "cancelled") for obs in seen.values()):
            return seen
        await asyncio.sleep(0.1)
    raise AssertionError(f"not terminal after {timeout}s: {[(j, o[-1]['status']) for j, o in seen.items()]}")


def ffprobe(data: bytes, tmp: Path, name: str) -> dict:
    path = tmp / name
    path.write_bytes(data)
    argv = ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def assert_progress_story(observations: list[dict]) -> None:
    """Steps only move forward, progress never goes down, and the job ends completed at 100."""
    steps = [STEPS.index(o["currentStep"]) for o in observations if o["currentStep"]]
    assert steps == sorted(steps), steps
    progress = [o["progress"] for o in observations]
    assert progress == sorted(progress), progress
    assert observations[0]["status"] in ("queued", "processing")
    assert observations[-1]["status"] == "completed" and observations[-1]["progress"] == 100


async def test_contract_example_batches_complete(
    make_api, start_operator, api_media, tmp_path, expect_error_cluster
):
    op = start_operator(admission__max_running=4)
    async with make_api(store_root=op.store_root) as api:
        long_src = {"type": "url", "url": f"{api_media.url}/long.mp4"}
        src = {"type": "url", "url": f"{api_media.url}/av.mp4"}
        first = await api.post(
            "/v1/batch",
            json={
                "jobs": [
                    {
                        "source": long_src,
                        "output": {"format": "mp3", "quality": "high"},
                        "options": {"filename": "talk"},
                    },
                    {"source": long_src, "output": {"format": "flac", "normalize": True}},
                ]
            },
        )
        second = await api.post(
            "/v1/batch",
            json={
                "jobs": [
                    {"source": src, "output": {"format": "mp3", "quality": "medium"}},
                    {"source": src, "output": {"format": "aac", "bitrate": "256k"}},
                ]
            },
        )
        assert first.status_code == second.status_code == 202, (first.text, second.text)
        jobs = [j["jobId"] for b in (first, second) for j in b.json()["data"]["jobs"]]
        # before completion: 202 JOB_NOT_COMPLETED
        expect_error_cluster(await api.get(f"/v1/download/{jobs[1]}"), 202, "JOB_NOT_COMPLETED")

        seen = await follow(api, jobs)
        for j in jobs:
            assert_progress_story(seen[j])
        # the 90 s source is slow enough for the steps to be seen while it runs
        long_steps = {o["currentStep"] for j in jobs[:2] for o in seen[j] if o["status"] == "processing"}
        assert len(long_steps & set(STEPS)) >= 2, long_steps
        assert any(0 < o["progress"] < 100 for j in jobs[:2] for o in seen[j]), "no intermediate progress"

        expected = [("mp3", "talk.mp3"), ("flac", None), ("mp3", None), ("aac", None)]
        for j, (fmt, filename) in zip(jobs, expected, strict=True):
            final = seen[j][-1]
            assert final["outputFile"]["format"] == fmt
            assert final["inputFile"]["duration"] > 0
            if filename:
                assert final["outputFile"]["filename"] == filename
            r = await api.get(final["downloadUrl"].replace("/audio-extract", "", 1))
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == MEDIA_TYPES[fmt]
            name = final["outputFile"]["filename"]
            assert r.headers["content-disposition"] == f'attachment; filename="{name}"'
            assert int(r.headers["content-length"]) == len(r.content) == final["outputFile"]["size"]
            probe = ffprobe(r.content, tmp_path, final["outputFile"]["filename"])
            [stream] = [s for s in probe["streams"] if s["codec_type"] == "audio"]
            assert stream["codec_name"] == CODECS[fmt]
            assert float(probe["format"]["duration"]) > 0.5
        batch = (await api.get(f"/v1/batch/{first.json()['data']['batchId']}")).json()["data"]
        assert (batch["completed"], batch["phase"]) == (2, "Succeeded")


async def test_upload_source_and_retention(make_api, start_operator, api_media, expect_error_cluster):
    op = start_operator(retention__output_seconds=3)
    async with make_api(store_root=op.store_root) as api:
        video = (api_media.directory / "av.mp4").read_bytes()
        up = await api.post("/v1/uploads", files={"file": ("av.mp4", video, "video/mp4")})
        assert up.status_code == 201, up.text
        source = {"type": "upload", "file": up.json()["data"]["fileId"]}
        r = await api.post("/v1/extract", json={"source": source, "output": {"format": "mp3"}})
        assert r.status_code == 202, r.text
        job = r.json()["data"]["jobId"]
        [obs] = (await follow(api, [job])).values()
        assert obs[-1]["status"] == "completed", obs[-1]
        assert (await api.get(f"/v1/download/{job}")).status_code == 200
        # after the (short) retention window: 410 and `expired`
        deadline = time.monotonic() + 30
        while (r := await api.get(f"/v1/download/{job}")).status_code != 410:
            assert r.status_code == 200 and time.monotonic() < deadline, r.status_code
            await asyncio.sleep(0.25)
        expect_error_cluster(r, 410, "FILE_EXPIRED")
        assert (await api.get(f"/v1/status/{job}")).json()["data"]["expired"] is True


async def test_cancelled_job_ends_cancelled(make_api, start_operator, api_media, expect_error_cluster):
    op = start_operator()
    async with make_api(store_root=op.store_root) as api:
        slow = {"type": "url", "url": f"{api_media.url}/slow/av.mp4"}
        fast = {"type": "url", "url": f"{api_media.url}/av.mp4"}
        r = await api.post(
            "/v1/batch",
            json={
                "jobs": [
                    {"source": slow, "output": {"format": "mp3"}},
                    {"source": fast, "output": {"format": "wav"}},
                ]
            },
        )
        assert r.status_code == 202, r.text
        slow_job, fast_job = (j["jobId"] for j in r.json()["data"]["jobs"])
        c = await api.post(f"/v1/jobs/{slow_job}/cancel")
        assert c.status_code == 202, c.text
        seen = await follow(api, [slow_job, fast_job], timeout=90)
        final = seen[slow_job][-1]
        assert final["status"] == "cancelled"
        assert final["error"]["code"] == "CANCELLED"
        assert seen[fast_job][-1]["status"] == "completed"  # cancelling one job leaves the other alone
        expect_error_cluster(await api.get(f"/v1/download/{slow_job}"), 409, "CANCELLED")
        # cancelling a finished job changes nothing
        again = await api.post(f"/v1/jobs/{fast_job}/cancel")
        assert again.status_code == 200 and again.json()["data"]["status"] == "completed"
