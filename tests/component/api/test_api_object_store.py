"""The API on both stores (docs/contract.md §3, §7): a volume (a temporary directory) and an object
store (a real S3 server, SeaweedFS: the ``s3_server`` fixture; each test under its own key
prefix). Uploads streamed through the API and direct ones PUT to a presigned URL, the quota counting
what a direct upload declared, downloads streamed with ranges or redirected to the store, and
``outputFile.url`` presigned. What is in the store is looked at past the API: files on the volume,
a plain S3 client on the bucket. The Kubernetes side is an in-memory stand-in (api_fakekube)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import botocore.session
import httpx
import pytest
from api_fakekube import FakeKube
from botocore.config import Config

from audio_extract_common import ids
from audio_extract_common.store import is_partial

OTHER_KEY = "axk_second-key"  # tenant other (conftest)
JOB = {"source": {"type": "url", "url": "http://127.0.0.1/a.mp4"}, "output": {"format": "mp3"}}
AUDIO = os.urandom(300_000)  # an output: over one 256 KiB chunk


@dataclass
class Store:
    """The store the API under test uses, looked at directly (not through the API's code)."""

    kind: str
    root: Path
    s3: Any = None
    prefix: str = ""
    _client: Any = field(default=None, repr=False)

    @property
    def settings(self) -> dict[str, Any]:
        if self.kind == "volume":
            return {"store_type": "volume", "store_root": self.root}
        return {"store_type": "s3", "s3": self.s3.settings(prefix=self.prefix)}

    def client(self) -> Any:
        if self._client is None:
            self._client = botocore.session.get_session().create_client(
                "s3",
                endpoint_url=self.s3.endpoint_url,
                region_name=self.s3.region,
                aws_access_key_id=self.s3.access_key_id,
                aws_secret_access_key=self.s3.secret_access_key,
                config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
            )
        return self._client

    def objects(self, under: str = "") -> dict[str, bytes]:
        """Every complete object (key relative to the store) whose key starts with ``under``."""
        if self.kind == "volume":
            if not self.root.exists():
                return {}
            return {
                p.relative_to(self.root).as_posix(): p.read_bytes()
                for p in sorted(self.root.rglob("*"))
                if p.is_file() and p.relative_to(self.root).as_posix().startswith(under)
            }
        listed = self.client().list_objects_v2(Bucket=self.s3.bucket, Prefix=f"{self.prefix}/{under}")
        found = {}
        for obj in listed.get("Contents", []):
            body = self.client().get_object(Bucket=self.s3.bucket, Key=obj["Key"])["Body"].read()
            found[obj["Key"].removeprefix(f"{self.prefix}/")] = body
        return found

    def partials(self) -> list[str]:
        """Partial writes left behind: temporary files, incomplete multipart uploads."""
        if self.kind == "volume":
            return [str(p) for p in self.root.rglob("*") if is_partial(p.name)] if self.root.exists() else []
        listed = self.client().list_multipart_uploads(Bucket=self.s3.bucket, Prefix=f"{self.prefix}/")
        return [u["Key"] for u in listed.get("Uploads", [])]

    def put(self, key: str, data: bytes) -> None:
        if self.kind == "volume":
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        else:
            self.client().put_object(Bucket=self.s3.bucket, Key=f"{self.prefix}/{key}", Body=data)

    def remove(self, key: str) -> None:
        if self.kind == "volume":
            (self.root / key).unlink()
        else:
            self.client().delete_object(Bucket=self.s3.bucket, Key=f"{self.prefix}/{key}")

    def modified(self, key: str) -> float:
        if self.kind == "volume":
            return (self.root / key).stat().st_mtime
        head = self.client().head_object(Bucket=self.s3.bucket, Key=f"{self.prefix}/{key}")
        return head["LastModified"].timestamp()

    def content_type(self, key: str) -> str | None:
        if self.kind == "volume":
            return None
        return self.client().head_object(Bucket=self.s3.bucket, Key=f"{self.prefix}/{key}")["ContentType"]


def _store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if kind == "volume":
        return Store("volume", tmp_path / "store")
    return Store(
        "s3", tmp_path / "unused", request.getfixturevalue("s3_server"), f"api-{uuid.uuid4().hex[:10]}"
    )


@pytest.fixture(params=["volume", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return _store(request.param, request, tmp_path)


@pytest.fixture
def bucket(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """The object store alone: for what only an object store does."""
    return _store("s3", request, tmp_path)


@pytest.fixture
def volume(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return _store("volume", request, tmp_path)


@contextlib.asynccontextmanager
async def api_on(make_client: Any, store: Store, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app on ``store``, with an in-memory Kubernetes (``c.kube``)."""
    async with make_client(allow_cidrs="127.0.0.0/8", **store.settings, **overrides) as c:
        c.kube = FakeKube().install(c.app)  # type: ignore[attr-defined]
        yield c


def upload_job(file_id: str) -> dict[str, Any]:
    return {"jobs": [{"source": {"type": "upload", "file": file_id}, "output": {"format": "mp3"}}]}


async def direct(
    c: httpx.AsyncClient, size: int, content_type: str = "video/mp4", **headers: str
) -> httpx.Response:
    body = {"filename": "talk.mp4", "size": size, "contentType": content_type}
    return await c.post("/v1/uploads", json=body, headers=headers)


async def put(ticket: dict[str, Any], data: bytes, **headers: str) -> httpx.Response:
    """The client's PUT, with plain httpx: no API key, the ticket's headers."""
    async with httpx.AsyncClient() as plain:
        return await plain.request(
            ticket["method"], ticket["uploadUrl"], content=data, headers={**ticket["headers"], **headers}
        )


# --- uploads ------------------------------------------------------------------------------------


async def test_streamed_uploads_land_in_the_store_and_a_use_touches_them(make_client, store):
    raw, form = os.urandom(300_000), os.urandom(200_000)
    async with api_on(make_client, store) as c:
        r = await c.post("/v1/uploads", content=raw, headers={"Content-Type": "video/mp4"})
        assert r.status_code == 201, r.text
        raw_id = r.json()["data"]["fileId"]
        assert r.json()["data"]["size"] == len(raw)
        r = await c.post("/v1/uploads", files={"file": ("clip.mp4", form, "video/mp4")}, data={"note": "x"})
        assert r.status_code == 201, r.text
        form_id = r.json()["data"]["fileId"]
        assert store.objects("uploads/") == {f"uploads/{raw_id}": raw, f"uploads/{form_id}": form}
        assert set(store.objects("upload-owners/")) == {
            f"upload-owners/main/{raw_id}",
            f"upload-owners/main/{form_id}",
        }
        if store.kind == "s3":
            assert store.content_type(f"uploads/{raw_id}") == "video/mp4"
        before = store.modified(f"uploads/{raw_id}")
        await asyncio.sleep(1.1)  # an object's time has whole seconds
        r = await c.post("/v1/batch", json=upload_job(raw_id))
        assert r.status_code == 202, r.text
        assert store.modified(f"uploads/{raw_id}") >= before + 1  # expiry counts from the use
        r = await c.post("/v1/batch", json=upload_job(raw_id), headers={"X-API-Key": OTHER_KEY})
        assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_SOURCE"


async def test_refused_streamed_uploads_leave_nothing(make_client, store, expect_error):
    async def chunks():
        for _ in range(8):
            yield b"x" * 4096

    async with api_on(make_client, store, max_upload_bytes=10_000, upload_quota_bytes=20_000) as c:
        expect_error(await c.post("/v1/uploads", content=chunks()), 413, "PAYLOAD_TOO_LARGE")
        expect_error(await c.post("/v1/uploads", content=b""), 400, "INVALID_REQUEST")
        r = await c.post("/v1/uploads", files={"other": ("a.mp4", b"data", "video/mp4")})
        expect_error(r, 400, "INVALID_REQUEST")
    assert store.objects() == {} and store.partials() == []


async def test_a_multipart_sized_upload_is_stored_whole(make_client, bucket):
    """Over one part (8 MiB): the object store writes it as a multipart upload, completed once."""
    data = os.urandom(9 << 20)
    async with api_on(make_client, bucket) as c:
        r = await c.post("/v1/uploads", content=data)
        assert r.status_code == 201, r.text
        assert bucket.objects("uploads/") == {f"uploads/{r.json()['data']['fileId']}": data}
        assert bucket.partials() == []


async def test_an_object_store_has_no_free_space_to_run_short_of(make_client, bucket, store_free_margin):
    async with api_on(make_client, bucket, store_min_free_bytes=store_free_margin) as c:
        assert (await c.post("/v1/uploads", content=b"video")).status_code == 201
        assert (await c.post("/v1/batch", json={"jobs": [JOB]})).status_code == 202


@pytest.fixture
def store_free_margin(tmp_path: Path) -> int:
    """A margin no disk here has free: a volume would refuse everything with STORE_FULL."""
    return os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize + 10**12


# --- direct uploads -----------------------------------------------------------------------------


async def test_a_direct_upload_is_put_to_the_store_and_usable_once_complete(
    make_client, bucket, expect_error
):
    data = os.urandom(150_000)
    async with api_on(make_client, bucket, upload_url_seconds=600) as c:
        asked_at = datetime.now(UTC).replace(microsecond=0)
        r = await direct(c, len(data))
        assert r.status_code == 201, r.text
        ticket = r.json()["data"]
        assert set(ticket) == {"fileId", "uploadUrl", "method", "headers", "expiresAt"}
        assert ids.UPLOAD_ID_RE.match(ticket["fileId"]) and ticket["method"] == "PUT"
        assert ticket["uploadUrl"].startswith(bucket.s3.endpoint_url + "/")
        assert ticket["headers"] == {"Content-Type": "video/mp4", "Content-Length": str(len(data))}
        expires = datetime.strptime(ticket["expiresAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert 595 <= (expires - asked_at).total_seconds() <= 605
        assert bucket.objects("uploads/") == {}
        # named before its bytes arrive
        err = expect_error(
            await c.post("/v1/batch", json=upload_job(ticket["fileId"])), 400, "INVALID_SOURCE"
        )
        assert err["details"][0]["field"] == "jobs[0].source.file"
        assert "upload not complete" in err["details"][0]["message"]
        # the Content-Type is signed: another one is refused by the store
        assert (await put(ticket, data, **{"Content-Type": "text/plain"})).status_code == 403
        reply = await put(ticket, data)
        assert reply.status_code == 200, reply.text
        assert bucket.objects("uploads/") == {f"uploads/{ticket['fileId']}": data}
        assert bucket.content_type(f"uploads/{ticket['fileId']}") == "video/mp4"
        r = await c.post("/v1/batch", json=upload_job(ticket["fileId"]))
        assert r.status_code == 202, r.text
        # another tenant's is unknown to it, complete or not
        r = await c.post("/v1/batch", json=upload_job(ticket["fileId"]), headers={"X-API-Key": OTHER_KEY})
        expect_error(r, 400, "INVALID_SOURCE")
        text = (await c.get("/metrics")).text
    assert 'audio_extract_api_direct_uploads_total{tenant="main"} 1.0' in text


async def test_the_store_takes_exactly_the_declared_size_of_a_direct_upload(make_client, bucket):
    data = os.urandom(1000)
    async with api_on(make_client, bucket) as c:
        ticket = (await direct(c, len(data))).json()["data"]
        for wrong in (data + b"more", data[:-1]):  # the length is signed into the URL
            assert (await put(ticket, wrong, **{"Content-Length": str(len(wrong))})).status_code == 403
        assert bucket.objects("uploads/") == {}
        assert (await put(ticket, data)).status_code == 200
        assert bucket.objects("uploads/") == {f"uploads/{ticket['fileId']}": data}
        assert (await c.post("/v1/batch", json=upload_job(ticket["fileId"]))).status_code == 202


async def test_a_direct_upload_with_more_bytes_than_declared_is_not_a_source(
    make_client, bucket, expect_error
):
    """Should a store ignore the signed length (or bytes come by another way), the API refuses."""
    async with api_on(make_client, bucket) as c:
        ticket = (await direct(c, 100)).json()["data"]
        bucket.put(f"uploads/{ticket['fileId']}", b"x" * 5000)
        err = expect_error(
            await c.post("/v1/batch", json=upload_job(ticket["fileId"])), 400, "INVALID_SOURCE"
        )
        assert "more than the 100 declared" in err["details"][0]["message"]


async def test_the_direct_form_on_a_volume_is_invalid_and_the_streamed_forms_stay(
    make_client, volume, expect_error
):
    async with api_on(make_client, volume) as c:
        err = expect_error(await direct(c, 1000), 400, "INVALID_REQUEST")
        assert "direct" in err["message"]
        assert volume.objects() == {}  # nothing reserved
        assert (await c.post("/v1/uploads", content=b"video")).status_code == 201


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"filename": "a.mp4", "size": 0}, 400, "INVALID_REQUEST", "size"),
        ({"size": 12}, 400, "INVALID_REQUEST", "filename"),
        (
            {"filename": "a.mp4", "size": 12, "contentType": "video/mp4\r\nX-Evil: 1"},
            400,
            "INVALID_REQUEST",
            "contentType",
        ),
        ({"filename": "a.mp4", "size": 12, "extra": 1}, 400, "INVALID_REQUEST", "extra"),
        ({"filename": "a.mp4", "size": 10**10}, 413, "PAYLOAD_TOO_LARGE", None),
        ([1, 2], 400, "INVALID_REQUEST", None),
    ],
)
async def test_bad_direct_upload_requests(make_client, bucket, expect_error, body, status, code, field):
    async with api_on(make_client, bucket) as c:
        err = expect_error(await c.post("/v1/uploads", json=body), status, code)
        if field:
            assert [d["field"] for d in err["details"]] == [field]
    assert bucket.objects() == {}


async def test_the_quota_counts_what_a_direct_upload_declared(make_client, bucket, expect_error):
    async with api_on(make_client, bucket, upload_quota_bytes=1000, upload_url_seconds=2) as c:
        first = await direct(c, 600)
        assert first.status_code == 201
        # reserved from the moment its URL is handed out, bytes or not
        err = expect_error(await direct(c, 600), 413, "QUOTA_EXCEEDED")
        assert "600 bytes stored or arriving" in err["details"]
        expect_error(await c.post("/v1/uploads", content=b"x" * 500), 413, "QUOTA_EXCEEDED")
        assert (await c.post("/v1/uploads", content=b"x" * 400)).status_code == 201  # exactly full
        expect_error(await c.post("/v1/uploads", content=b"x"), 413, "QUOTA_EXCEEDED")
        # its URL expires without bytes: the declared size stops counting
        await until_past(first.json()["data"]["expiresAt"])
        assert (await direct(c, 600)).status_code == 201


async def test_an_arrived_direct_upload_counts_its_stored_size(make_client, bucket, expect_error):
    overrides = {"upload_quota_bytes": 1000, "upload_quota_count": 2, "upload_url_seconds": 2}
    async with api_on(make_client, bucket, **overrides) as c:
        ticket = (await direct(c, 600)).json()["data"]
        assert (await put(ticket, b"v" * 600)).status_code == 200
        await until_past(ticket["expiresAt"])  # only its bytes keep it counted now
        expect_error(await direct(c, 500), 413, "QUOTA_EXCEEDED")
        assert (await direct(c, 400)).status_code == 201
        err = expect_error(await c.post("/v1/uploads", content=b"x"), 413, "QUOTA_EXCEEDED")
        assert "2 uploads" in err["message"]


async def until_past(timestamp: str) -> None:
    """Sleep until the second after ``timestamp`` (ISO 8601, whole seconds) has passed."""
    at = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    await asyncio.sleep(max(0.0, at + 1.1 - time.time()))


# --- downloads ----------------------------------------------------------------------------------


async def completed(
    c: httpx.AsyncClient, store: Store, *, expired: bool = False, name: str = "talk.mp3"
) -> str:
    """A job finished as the operator leaves it: the output at ``<jobId>/audio.mp3`` (outputFile.path),
    named ``name`` for the client (outputFile.filename)."""
    r = await c.post("/v1/batch", json={"jobs": [JOB, JOB]})
    assert r.status_code == 202, r.text
    job_id = r.json()["data"]["jobs"][0]["jobId"]
    key = f"{job_id}/audio.mp3"
    store.put(key, AUDIO)
    obj = c.kube.objects[ids.batch_object_name(ids.parse_job_id(job_id)[0])]  # type: ignore[attr-defined]
    obj["status"] = {
        "jobs": [
            {
                "index": 0,
                "jobId": job_id,
                "jobName": "j",
                "status": "completed",
                "progress": 100,
                "completedAt": "2026-01-21T12:36:10Z",
                "expiresAt": "2026-01-21T12:37:10Z" if expired else "2999-01-01T00:00:00Z",
                "outputFile": {"filename": name, "path": key, "size": len(AUDIO), "format": "mp3"},
            }
        ]
    }
    return job_id


async def test_downloads_stream_whole_and_by_range(make_client, store, expect_error):
    async with api_on(make_client, store) as c:
        job_id = await completed(c, store)
        r = await c.get(f"/v1/download/{job_id}")
        assert r.status_code == 200 and r.content == AUDIO
        assert r.headers["content-type"] == "audio/mpeg"
        assert r.headers["content-length"] == str(len(AUDIO))
        assert r.headers["content-disposition"] == 'attachment; filename="talk.mp3"'
        assert r.headers["accept-ranges"] == "bytes"
        for header, first, last in (
            ("bytes=10-19", 10, 19),
            ("bytes=299990-", 299_990, len(AUDIO) - 1),
            ("bytes=-5", len(AUDIO) - 5, len(AUDIO) - 1),
            ("bytes=262140-262200", 262_140, 262_200),  # across a chunk boundary
        ):
            r = await c.get(f"/v1/download/{job_id}", headers={"Range": header})
            assert r.status_code == 206, header
            assert r.content == AUDIO[first : last + 1], header
            assert r.headers["content-range"] == f"bytes {first}-{last}/{len(AUDIO)}"
            assert r.headers["content-length"] == str(last - first + 1)
        r = await c.get(f"/v1/download/{job_id}", headers={"Range": f"bytes={len(AUDIO)}-"})
        expect_error(r, 416, "INVALID_REQUEST")
        assert r.headers["content-range"] == f"bytes */{len(AUDIO)}"


async def test_a_redirect_leads_to_the_bytes_in_the_store(make_client, store):
    async with api_on(make_client, store, download_url_seconds=120) as c:
        job_id = await completed(c, store, name="Café talk.mp3")
        r = await c.get(f"/v1/download/{job_id}", params={"redirect": "true"})
        if store.kind == "volume":  # nothing to redirect to: the bytes, as without it
            assert r.status_code == 200 and r.content == AUDIO
            return
        assert r.status_code == 307, r.text
        assert r.headers["cache-control"] == "no-store"
        location = r.headers["location"]
        assert location.startswith(store.s3.endpoint_url + "/")
        assert parse_qs(urlsplit(location).query)["X-Amz-Expires"] == ["120"]
        async with httpx.AsyncClient() as plain:  # no API key
            got = await plain.get(location)
        assert got.status_code == 200 and got.content == AUDIO
        assert got.headers["content-type"] == "audio/mpeg"
        assert got.headers["content-disposition"] == (
            "attachment; filename=\"Cafe talk.mp3\"; filename*=UTF-8''Caf%C3%A9%20talk.mp3"
        )


async def test_output_urls_in_views_are_presigned_with_an_object_store(make_client, store):
    async with api_on(make_client, store, download_url_seconds=300) as c:
        job_id = await completed(c, store)
        view = (await c.get(f"/v1/status/{job_id}")).json()["data"]
        batch = (await c.get(f"/v1/batch/{view['batchId']}")).json()["data"]
        cancel = (await c.post(f"/v1/jobs/{job_id}/cancel")).json()["data"]
        urls = [view["outputFile"]["url"], batch["jobs"][0]["outputFile"]["url"], cancel["outputFile"]["url"]]
        download_path = f"/audio-extract/v1/download/{job_id}"
        assert view["downloadUrl"] == download_path
        assert batch["jobs"][1]["outputFile"] is None  # still queued
        if store.kind == "volume":
            assert urls == [download_path] * 3
            return
        async with httpx.AsyncClient() as plain:
            for url in urls:
                assert url.startswith(store.s3.endpoint_url + "/")
                assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["300"]
                got = await plain.get(url)
                assert got.status_code == 200 and got.content == AUDIO
                assert got.headers["content-disposition"] == 'attachment; filename="talk.mp3"'


async def test_an_expired_or_removed_output_is_gone(make_client, store, expect_error):
    async with api_on(make_client, store) as c:
        expired = await completed(c, store, expired=True)
        removed = await completed(c, store)
        store.remove(f"{removed}/audio.mp3")
        for job_id in (expired, removed):
            for params in ({}, {"redirect": "true"}):
                expect_error(await c.get(f"/v1/download/{job_id}", params=params), 410, "FILE_EXPIRED")
        view = (await c.get(f"/v1/status/{expired}")).json()["data"]
        assert view["expired"] is True
        assert view["outputFile"]["url"] == f"/audio-extract/v1/download/{expired}"  # no link to nothing


async def test_an_unreachable_object_store_is_503(make_client, bucket, expect_error):
    closed = bucket.s3.settings(prefix=bucket.prefix, endpoint_url="http://127.0.0.1:1")
    started = time.monotonic()
    async with make_client(store_type="s3", s3=closed) as c:
        r = await c.post("/v1/uploads", content=b"video")
    err = expect_error(r, 503, "SERVICE_UNAVAILABLE")
    assert "store" in err["message"]
    print(f"answered in {time.monotonic() - started:.2f} s")
