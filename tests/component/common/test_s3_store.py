"""The S3 store (audio_extract_common.objectstore) against a real S3 server: SeaweedFS, started
once per session by the `s3_server` fixture, every request signed and checked. Each test works
under its own key prefix; assertions about what is in the bucket use a second, plain client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from audio_extract_common.filenames import content_disposition
from audio_extract_common.objectstore import (
    PART_SIZE,
    READ_CHUNK,
    AccessDenied,
    ObjectNotFound,
    S3Store,
    StoreError,
)
from support.s3_server import S3Server

MiB = 1 << 20


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def store(s3_server: S3Server, prefix: str) -> AsyncIterator[S3Store]:
    async with S3Store(s3_server.settings(prefix=prefix)) as opened:
        yield opened


@pytest.fixture
async def bucket(s3_server: S3Server) -> AsyncIterator[Any]:
    """A plain client on the whole bucket, to look past the store."""
    async with get_session().create_client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        region_name=s3_server.region,
        aws_access_key_id=s3_server.access_key_id,
        aws_secret_access_key=s3_server.secret_access_key,
    ) as client:
        yield client


async def chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def read(store: S3Store, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.stream(key, start, end)])


async def pending_uploads(bucket: Any, bucket_name: str, prefix: str) -> list[dict[str, Any]]:
    listing = await bucket.list_multipart_uploads(Bucket=bucket_name, Prefix=f"{prefix}/")
    return list(listing.get("Uploads", []))


async def test_a_20_mib_stream_round_trips_through_a_multipart_upload(store, bucket, s3_server, prefix):
    data = os.urandom(20 * MiB)
    # chunks that do not line up with parts
    assert await store.put_stream("job/out.mp3", chunked(data, MiB + 7), content_type="audio/mpeg") == len(
        data
    )

    assert await store.size("job/out.mp3") == len(data)
    chunks = [chunk async for chunk in store.stream("job/out.mp3")]
    assert b"".join(chunks) == data
    assert max(map(len, chunks)) <= READ_CHUNK
    head = await bucket.head_object(Bucket=s3_server.bucket, Key=f"{prefix}/job/out.mp3")
    assert head["ETag"].strip('"').endswith("-3")  # 8 + 8 + 4 MiB
    assert head["ContentType"] == "audio/mpeg"
    assert await pending_uploads(bucket, s3_server.bucket, prefix) == []


async def test_what_fits_in_one_part_is_one_put_and_an_empty_stream_an_empty_object(
    store, bucket, s3_server, prefix
):
    data = os.urandom(PART_SIZE)
    assert await store.put_stream("one", chunked(data, MiB)) == PART_SIZE
    head = await bucket.head_object(Bucket=s3_server.bucket, Key=f"{prefix}/one")
    assert "-" not in head["ETag"]  # not a multipart object
    assert await read(store, "one") == data

    assert await store.put_stream("empty", chunked(b"", 1)) == 0
    assert await store.size("empty") == 0
    assert await read(store, "empty") == b""


@pytest.mark.parametrize("fails_after", [3 * MiB, 17 * MiB], ids=["in-the-first-part", "after-two-parts"])
async def test_a_failing_stream_leaves_no_object_and_no_upload(store, bucket, s3_server, prefix, fails_after):
    async def failing() -> AsyncIterator[bytes]:
        for _ in range(fails_after // MiB):
            yield os.urandom(MiB)
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError, match="the source broke"):
        await store.put_stream("broken", failing())

    assert await store.size("broken") is None
    assert await pending_uploads(bucket, s3_server.bucket, prefix) == []


@pytest.mark.parametrize("how", ["task.cancel", "anyio cancel scope"])
async def test_a_cancelled_write_leaves_no_object_and_no_upload(store, bucket, s3_server, prefix, how):
    never = asyncio.Event()

    async def slow_network(**_: Any) -> None:
        await asyncio.sleep(0.3)  # the abort is not on the wire yet when a cancel scope strikes again

    store._client.meta.events.register("before-send.s3.AbortMultipartUpload", slow_network)

    async def stalls() -> AsyncIterator[bytes]:
        for _ in range(17):
            yield os.urandom(MiB)
        await never.wait()  # a client that stops sending mid-upload

    async def two_parts_uploaded() -> None:
        while True:
            uploads = await pending_uploads(bucket, s3_server.bucket, prefix)
            if uploads:
                parts = await bucket.list_parts(
                    Bucket=s3_server.bucket, Key=uploads[0]["Key"], UploadId=uploads[0]["UploadId"]
                )
                if len(parts.get("Parts", [])) == 2:
                    return
            await asyncio.sleep(0.05)

    if how == "task.cancel":
        task = asyncio.create_task(store.put_stream("stalled", stalls()))
        await asyncio.wait_for(two_parts_uploaded(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.put_stream, "stalled", stalls())
            await asyncio.wait_for(two_parts_uploaded(), 30)
            tg.cancel_scope.cancel()

    assert await store.size("stalled") is None
    assert await pending_uploads(bucket, s3_server.bucket, prefix) == []


async def test_ranged_reads_are_inclusive_like_http_ranges(store):
    data = os.urandom(200_000)  # several read chunks
    await store.put_bytes("r", data)

    assert await read(store, "r", 10, 19) == data[10:20]
    assert await read(store, "r", 100_000) == data[100_000:]
    assert await read(store, "r", len(data) - 1, len(data) - 1) == data[-1:]
    assert await read(store, "r", 0, len(data) + 500) == data  # an end past the object: to its end
    with pytest.raises(StoreError) as past_the_end:
        await read(store, "r", len(data))
    assert not isinstance(past_the_end.value, ObjectNotFound)
    with pytest.raises(ValueError):
        await read(store, "r", 20, 10)


async def test_an_absent_key_has_no_size_and_reading_it_raises_object_not_found(store):
    assert await store.size("nothing/here") is None
    with pytest.raises(ObjectNotFound):
        await read(store, "nothing/here")
    await store.delete("nothing/here")  # deleting what is absent is no error


async def test_touch_marks_an_object_used_now_and_keeps_its_bytes_and_type(store):
    data = os.urandom(3 * MiB)
    await store.put_bytes("uploads/u2", data, content_type="video/mp4")
    [written] = [info async for info in store.list("uploads/u2")]
    await asyncio.sleep(1.1)  # LastModified counts whole seconds

    assert await store.touch("uploads/u2") == len(data)
    [touched] = [info async for info in store.list("uploads/u2")]
    assert touched.last_modified > written.last_modified
    assert await read(store, "uploads/u2") == data
    url = await store.presign_get("uploads/u2", 60)
    async with httpx.AsyncClient() as http:
        assert (await http.get(url)).headers["content-type"] == "video/mp4"
    assert await store.touch("uploads/absent") is None
    # what only a volume has
    assert await store.free_bytes() is None and store.local_path("uploads/u2") is None


async def put_many(store: S3Store, keys: list[str]) -> None:
    limit = asyncio.Semaphore(32)

    async def put(key: str) -> None:
        async with limit:
            await store.put_bytes(key, key.encode())

    await asyncio.gather(*(put(key) for key in keys))


async def test_delete_prefix_removes_that_prefix_and_nothing_else(store):
    many = [f"job_1/part-{i:04d}" for i in range(1100)]  # more than one DeleteObjects batch
    started = time.monotonic()
    await put_many(store, [*many, "job_1", "job_10/out.mp3", "job_1x", "other/out.mp3"])
    written = time.monotonic() - started

    started = time.monotonic()
    assert await store.delete_prefix("job_1") == 1101
    deleted = time.monotonic() - started

    assert [info.key async for info in store.list("job_1")] == ["job_10/out.mp3", "job_1x"]
    assert await store.size("other/out.mp3") == len(b"other/out.mp3")
    print(f"1104 objects written in {written:.2f} s, 1101 deleted in {deleted:.2f} s")


async def test_list_pages_through_more_than_one_response(store, bucket, s3_server, prefix):
    keys = [f"up/{i:04d}" for i in range(1005)]
    await put_many(store, [*keys, "upx", "down/1"])
    first = await bucket.list_objects_v2(Bucket=s3_server.bucket, Prefix=f"{prefix}/up/")
    assert first["IsTruncated"] and first["KeyCount"] == 1000  # the server's page: 1000 keys

    before = datetime.now(UTC)
    listed = [info async for info in store.list("up/")]
    assert [info.key for info in listed] == keys
    assert all(info.size == len(info.key) for info in listed)
    assert all(info.last_modified.tzinfo is UTC for info in listed)
    assert all(abs(info.last_modified - before) < timedelta(minutes=5) for info in listed)


async def test_a_presigned_get_needs_no_credentials_and_names_the_download(store):
    data = os.urandom(1000)
    await store.put_bytes("job/out.mp3", data)
    url = await store.presign_get("job/out.mp3", 60, filename="Café talk.mp3", content_type="audio/mpeg")

    async with httpx.AsyncClient() as http:
        got = await http.get(url)
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-disposition"] == content_disposition("Café talk.mp3")
    assert "filename*=UTF-8''Caf%C3%A9%20talk.mp3" in got.headers["content-disposition"]
    assert got.headers["content-type"] == "audio/mpeg"


async def test_a_presigned_put_stores_the_bytes_with_the_headers_it_returns(store, bucket, s3_server, prefix):
    put = await store.presign_put("uploads/u1", 60, content_type="video/mp4")
    assert put.method == "PUT" and put.headers == {"Content-Type": "video/mp4"}
    assert timedelta(seconds=55) < put.expires_at - datetime.now(UTC) <= timedelta(seconds=60)
    data = os.urandom(300_000)

    async with httpx.AsyncClient() as http:
        other_type = await http.put(put.url, content=b"x", headers={"Content-Type": "text/plain"})
        assert other_type.status_code == 403  # the type is signed
        done = await http.request(put.method, put.url, content=data, headers=put.headers)
    assert done.status_code == 200, done.text
    assert await read(store, "uploads/u1") == data
    head = await bucket.head_object(Bucket=s3_server.bucket, Key=f"{prefix}/uploads/u1")
    assert head["ContentType"] == "video/mp4"


async def test_a_presigned_put_with_a_length_takes_exactly_that_many_bytes(store, bucket, s3_server, prefix):
    data = os.urandom(1000)
    put = await store.presign_put("uploads/u1", 60, content_type="video/mp4", content_length=len(data))
    assert put.headers == {"Content-Type": "video/mp4", "Content-Length": "1000"}

    async with httpx.AsyncClient() as http:
        for wrong in (data + b"more", data[:-1]):  # the length is signed: neither more nor less
            headers = {**put.headers, "Content-Length": str(len(wrong))}
            refused = await http.request(put.method, put.url, content=wrong, headers=headers)
            assert refused.status_code == 403, refused.text
        listed = await bucket.list_objects_v2(Bucket=s3_server.bucket, Prefix=f"{prefix}/")
        assert listed.get("Contents", []) == []
        done = await http.request(put.method, put.url, content=data, headers=put.headers)
    assert done.status_code == 200, done.text
    assert await read(store, "uploads/u1") == data


async def test_an_expired_presigned_url_is_refused(store):
    await store.put_bytes("soon-gone", b"bytes")
    get_url = await store.presign_get("soon-gone", 1)
    put = await store.presign_put("soon-written", 1)
    await asyncio.sleep(2.1)

    async with httpx.AsyncClient() as http:
        assert (await http.get(get_url)).status_code == 403
        assert (await http.put(put.url, content=b"late", headers=put.headers)).status_code == 403
    assert await store.size("soon-written") is None


async def test_a_wrong_secret_is_refused_with_access_denied(s3_server, prefix):
    async with S3Store(s3_server.settings(prefix=prefix, secret_access_key="not-the-secret")) as wrong:
        with pytest.raises(AccessDenied, match="SignatureDoesNotMatch"):
            await wrong.put_bytes("x", b"x")
        with pytest.raises(AccessDenied):
            await wrong.size("x")
        url = await wrong.presign_get("x", 60)
    async with httpx.AsyncClient() as http:
        assert (await http.get(url)).status_code == 403


async def test_the_key_prefix_keeps_two_stores_on_one_bucket_apart(s3_server, bucket):
    a, b = (s3_server.settings(prefix=f"{name}-{uuid.uuid4().hex[:8]}/") for name in "ab")
    async with S3Store(a) as store_a, S3Store(b) as store_b:
        await store_a.put_bytes("same/key", b"from a")
        await store_b.put_bytes("same/key", b"from b")
        assert await read(store_a, "same/key") == b"from a"
        assert await read(store_b, "same/key") == b"from b"
        assert [info.key async for info in store_a.list()] == ["same/key"]

        assert await store_a.delete_prefix("") == 1  # everything of a, nothing of b
        assert await store_a.size("same/key") is None
        assert await read(store_b, "same/key") == b"from b"
    raw = await bucket.get_object(Bucket=s3_server.bucket, Key=f"{b.prefix}same/key")
    assert await raw["Body"].read() == b"from b"


@pytest.fixture
def no_shared_aws_config(monkeypatch, tmp_path):
    """Only the environment may supply credentials, and no lookup leaves the machine (instance
    metadata is the chain's last resort)."""
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)


async def test_without_keys_the_standard_credential_chain_supplies_them(
    s3_server, prefix, monkeypatch, no_shared_aws_config
):
    settings = s3_server.settings(prefix=prefix, access_key_id=None, secret_access_key=None)
    async with S3Store(settings) as store:
        with pytest.raises(StoreError, match="credentials"):
            await store.put_bytes("chain", b"x")

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_access_key)
    async with S3Store(settings) as store:
        await store.put_bytes("chain", b"from the environment")
        assert await read(store, "chain") == b"from the environment"


async def test_presigned_urls_name_the_presign_endpoint(s3_server, prefix):
    port = urlsplit(s3_server.endpoint_url).port
    settings = s3_server.settings(prefix=prefix, presign_endpoint_url=f"http://localhost:{port}")
    async with S3Store(settings) as store:
        await store.put_bytes("job/out.wav", b"RIFF")  # through endpoint_url
        url = await store.presign_get("job/out.wav", 60)
        put = await store.presign_put("job/in.mp4", 60)
    assert urlsplit(url).netloc == urlsplit(put.url).netloc == f"localhost:{port}"
    async with httpx.AsyncClient() as http:  # signed for that host: the server checks it
        assert (await http.get(url)).content == b"RIFF"


async def test_abort_stale_uploads_aborts_old_incomplete_uploads_under_the_prefix_only(
    store, bucket, s3_server, prefix
):
    mine = await bucket.create_multipart_upload(Bucket=s3_server.bucket, Key=f"{prefix}/killed-writer")
    outside = await bucket.create_multipart_upload(Bucket=s3_server.bucket, Key=f"{prefix}-other/x")
    try:
        assert await store.abort_stale_uploads(timedelta(hours=1)) == 0
        assert len(await pending_uploads(bucket, s3_server.bucket, prefix)) == 1

        assert await store.abort_stale_uploads(timedelta(0)) == 1
        assert await pending_uploads(bucket, s3_server.bucket, prefix) == []
        assert len(await pending_uploads(bucket, s3_server.bucket, f"{prefix}-other")) == 1
    finally:
        for upload in (mine, outside):
            with contextlib.suppress(ClientError):  # already aborted
                await bucket.abort_multipart_upload(
                    Bucket=s3_server.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "../up", "a/./b", "a/"])
async def test_a_key_that_is_not_a_plain_path_is_refused(store, key):
    with pytest.raises(ValueError):
        await store.put_bytes(key, b"x")
