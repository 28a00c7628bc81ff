"""The client against a real HTTP server scripted to refuse, replay and cut off: retries keep one
Idempotency-Key (one batch), Retry-After is waited out and bounded, errors come typed, an
interrupted download resumes with Range."""

from __future__ import annotations

from pathlib import Path

import pytest
from client_fakeapi import AUDIO, FakeApi

from audio_extract_client import AsyncClient, Client, RetryPolicy, errors

JOB = {"source": {"type": "url", "url": "https://media.example/a.mp4"}, "output": {"format": "mp3"}}


def _client(url: str, waits: list[float], retry: RetryPolicy | None = None) -> Client:
    return Client(url, "axk_test", retry=retry, sleep=waits.append)


def test_a_queue_full_submission_is_sent_again_with_the_same_key_and_makes_one_batch(
    fake: tuple[FakeApi, str],
) -> None:
    api, url = fake
    api.refuse = [(503, "QUEUE_FULL", "2"), (429, "RATE_LIMITED", "1")]
    waits: list[float] = []
    with _client(url, waits) as client:
        accepted = client.submit_batch([JOB, JOB])
    posts = [h for method, path, h in api.log if (method, path) == ("POST", "/v1/batch")]
    assert len(posts) == 3
    assert len({h["Idempotency-Key"] for h in posts}) == 1 and posts[0]["X-API-Key"] == "axk_test"
    assert waits == [2.0, 1.0]  # what Retry-After said, in order
    assert list(api.batches) == [accepted.batchId] and accepted.totalJobs == 2


def test_a_lost_answer_resent_with_its_key_returns_the_same_batch(fake: tuple[FakeApi, str]) -> None:
    api, url = fake
    with _client(url, []) as client:
        first = client.submit_batch([JOB], idempotency_key="ae-same")
        again = client.submit_batch([JOB], idempotency_key="ae-same")
        other = client.submit_batch([JOB])
    assert first.batchId == again.batchId != other.batchId
    assert len(api.batches) == 2


def test_retries_are_bounded_and_a_long_retry_after_is_not_cut_short(fake: tuple[FakeApi, str]) -> None:
    api, url = fake
    api.refuse = [(503, "QUEUE_FULL", "1")] * 5
    waits: list[float] = []
    with _client(url, waits, RetryPolicy(attempts=3)) as client, pytest.raises(errors.QueueFull) as caught:
        client.submit_batch([JOB])
    assert waits == [1.0, 1.0] and caught.value.status == 503 and caught.value.retry_after == "1"
    assert isinstance(caught.value, errors.Unavailable)

    api.refuse = [(503, "STORE_FULL", "600")]
    waits.clear()
    with _client(url, waits) as client, pytest.raises(errors.StoreFull):
        client.submit_batch([JOB])
    assert waits == []  # 600 s is more than max_delay: given up at once, never retried sooner
    assert not api.batches


def test_error_answers_are_typed_by_code(fake: tuple[FakeApi, str]) -> None:
    _, url = fake
    with _client(url, []) as client:
        with pytest.raises(errors.JobNotFound) as caught:
            client.status("job_0000000000000000")
        assert isinstance(caught.value, errors.NotFoundError) and caught.value.code == "JOB_NOT_FOUND"
        with pytest.raises(ValueError, match="not a job id"):
            client.status("nope")
        with pytest.raises(errors.TransportError):
            Client("http://127.0.0.1:9", "k", retry=RetryPolicy(attempts=2), sleep=lambda _: None).status(
                "job_0000000000000000"
            )


def test_an_upload_refused_for_a_full_store_is_streamed_again_whole(
    fake: tuple[FakeApi, str], tmp_path: Path
) -> None:
    api, url = fake
    api.refuse_uploads = [(503, "STORE_FULL", "1")]
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"v" * 700_000)
    seen: list[tuple[int, int | None]] = []
    with _client(url, []) as client:
        result = client.upload(video, on_progress=lambda done, total: seen.append((done, total)))
    assert api.uploads[result.fileId] == video.read_bytes() and result.size == 700_000
    assert seen[-1] == (700_000, 700_000)


def test_a_download_cut_off_midway_resumes_with_range(fake: tuple[FakeApi, str], tmp_path: Path) -> None:
    api, url = fake
    with _client(url, []) as client:
        job_id = client.submit_batch([JOB]).jobs[0].jobId
        with pytest.raises(errors.JobNotCompleted):
            client.download(job_id, tmp_path)
        client.wait_batch(api.jobs()[job_id].batch_id, interval=0)
        api.cut_download_at = 100_000
        path = client.download(job_id, tmp_path)
    assert path == tmp_path / f"{job_id}.mp3" and path.read_bytes() == AUDIO
    assert not (tmp_path / f"{job_id}.mp3.part").exists()
    ranges = [h.get("Range") for method, p, h in api.log if p.startswith("/v1/download/")]
    assert ranges[-2:] == [None, "bytes=100000-"]


def test_a_failed_jobs_download_raises_its_job_code(fake: tuple[FakeApi, str], tmp_path: Path) -> None:
    _, url = fake
    bad = {"source": {"type": "url", "url": "https://media.example/noaudio.mp4"}, "output": {"format": "mp3"}}
    with _client(url, []) as client:
        accepted = client.submit_batch([bad])
        view = client.wait_batch(accepted.batchId, interval=0)
        assert view.jobs[0].error and view.jobs[0].error.code == "NO_AUDIO_STREAM"
        with pytest.raises(errors.JobFailed) as caught:
            client.download(accepted.jobs[0].jobId, tmp_path / "out.mp3")
    assert caught.value.job_code == "NO_AUDIO_STREAM" and caught.value.status == 409


async def test_the_async_client_retries_with_one_key_and_resumes_downloads(
    fake: tuple[FakeApi, str], tmp_path: Path
) -> None:
    api, url = fake
    api.refuse = [(503, "QUEUE_FULL", "1")]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with AsyncClient(url, "axk_test", sleep=sleep) as client:
        accepted = await client.submit_batch([JOB])
        await client.wait_batch(accepted.batchId, interval=0)
        api.cut_download_at = 4096
        path = await client.download(accepted.jobs[0].jobId, tmp_path / "a.mp3")
    keys = {h["Idempotency-Key"] for m, p, h in api.log if p == "/v1/batch"}
    assert len(keys) == 1 and len(api.batches) == 1 and waits[0] == 1.0
    assert path.read_bytes() == AUDIO
