"""POST /v1/uploads: raw and multipart bodies streamed into the store, capped."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time

import pytest

from support.api_keys import KEY


def stored(store_root) -> dict[str, bytes]:
    d = store_root / "uploads"
    return {p.name: p.read_bytes() for p in d.iterdir()} if d.exists() else {}


async def test_raw_upload(client, settings):
    data = os.urandom(300_000)
    r = await client.post("/v1/uploads", content=data, headers={"Content-Type": "video/mp4"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["success"] is True
    file_id = body["data"]["fileId"]
    assert file_id.startswith("upl_") and len(file_id) == 20
    assert body["data"]["size"] == len(data)
    assert stored(settings.store_root) == {file_id: data}


async def test_multipart_upload_keeps_only_the_file_part(client, settings):
    data = os.urandom(200_000)
    r = await client.post(
        "/v1/uploads", files={"file": ("clip.mp4", data, "video/mp4")}, data={"note": "ignored"}
    )
    assert r.status_code == 201, r.text
    assert stored(settings.store_root) == {r.json()["data"]["fileId"]: data}


async def test_upload_is_usable_as_a_source(client, expect_error):
    file_id = (await client.post("/v1/uploads", content=b"video bytes")).json()["data"]["fileId"]
    body = {"jobs": [{"source": {"type": "upload", "file": file_id}, "output": {"format": "mp3"}}]}
    # Validation passes (the upload exists); the unreachable Kubernetes API answers.
    expect_error(await client.post("/v1/batch", json=body), 503, "SERVICE_UNAVAILABLE")


@pytest.mark.parametrize("chunked", [False, True])
async def test_upload_over_the_cap_is_413_and_leaves_nothing(make_client, settings, expect_error, chunked):
    async def gen():
        for _ in range(8):
            yield b"x" * 4096

    async with make_client(max_upload_bytes=10_000) as c:
        content = gen() if chunked else b"x" * 20_000
        expect_error(await c.post("/v1/uploads", content=content), 413, "PAYLOAD_TOO_LARGE")
        # multipart slack is for boundaries, not for a bigger file
        r = await c.post("/v1/uploads", files={"file": ("a.mp4", b"y" * 10_001, "video/mp4")})
        expect_error(r, 413, "PAYLOAD_TOO_LARGE")
    assert stored(settings.store_root) == {}
    uploads = settings.store_root / "uploads"
    assert not uploads.exists() or list(uploads.glob("*")) == []  # no partial .part files either


async def test_empty_and_partless_uploads_are_400(client, settings, expect_error):
    expect_error(await client.post("/v1/uploads", content=b""), 400, "INVALID_REQUEST")
    r = await client.post("/v1/uploads", files={"other": ("a.mp4", b"data", "video/mp4")})
    expect_error(r, 400, "INVALID_REQUEST")
    r = await client.post(
        "/v1/uploads", content=b"--x\r\nnot multipart", headers={"Content-Type": "multipart/form-data"}
    )
    expect_error(r, 400, "INVALID_REQUEST")
    assert stored(settings.store_root) == {}


async def test_the_final_fsync_does_not_stall_the_event_loop(client, settings, monkeypatch):
    """A 5 GB upload's fsync can take many seconds: it must not hold the loop (and every probe
    and request of the process) meanwhile. The disk is made slow by a 1 s sleep in fsync."""
    real_fsync, synced = os.fsync, threading.Event()

    def slow_fsync(fd: int) -> None:
        time.sleep(1.0)
        real_fsync(fd)
        synced.set()

    monkeypatch.setattr(os, "fsync", slow_fsync)
    gaps: list[float] = []

    async def heartbeat() -> None:
        last = time.monotonic()
        try:
            while True:
                await asyncio.sleep(0.01)
                gaps.append(time.monotonic() - last)
                last = time.monotonic()
        finally:  # the stall the cancellation ended, if any
            gaps.append(time.monotonic() - last)

    beat = asyncio.create_task(heartbeat())
    try:
        data = os.urandom(300_000)
        r = await client.post("/v1/uploads", content=data)
    finally:
        beat.cancel()
        await asyncio.gather(beat, return_exceptions=True)
    assert r.status_code == 201, r.text
    assert synced.is_set()
    assert stored(settings.store_root) == {r.json()["data"]["fileId"]: data}
    print(f"longest event-loop stall during the upload: {max(gaps):.3f}s")
    assert max(gaps) < 0.5


async def test_a_client_gone_mid_upload_is_no_server_error(client, settings, caplog):
    """An aborted upload leaves nothing behind and counts as the client's doing (499), not as an
    unhandled error (500, with a stack trace) that the 5xx alerts would count."""
    messages = [{"type": "http.request", "body": b"x" * 100, "more_body": True}, {"type": "http.disconnect"}]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/uploads",
        "raw_path": b"/v1/uploads",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"api.test"), (b"x-api-key", KEY.encode())],
        "client": ("127.0.0.1", 1),
        "server": ("api.test", 80),
        "state": {},
    }
    with caplog.at_level(logging.INFO, logger="audio_extract_api"):
        await client.app(scope, receive, send)
    assert [m for m in sent if m["type"] == "http.response.start"] == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    metrics = (await client.get("/metrics")).text
    assert 'method="POST",route="/v1/uploads",status="499"' in metrics
    assert 'route="/v1/uploads",status="500"' not in metrics
    assert stored(settings.store_root) == {}
    uploads = settings.store_root / "uploads"
    assert not uploads.exists() or list(uploads.glob("*")) == []
