"""The store's limits (docs/contract.md §7) on a real temporary-directory store: a
tenant's uploads are capped in count and bytes (413 QUOTA_EXCEEDED), and a store short of free
space refuses new work (503 STORE_FULL with Retry-After) instead of letting jobs fail on it."""

from __future__ import annotations

import asyncio
import os
import re
import shutil

import pytest
from api_fakekube import FakeKube

from audio_extract_common.store import FilesystemStore

KEY, SIBLING_KEY = "axk_component-test-key", "axk_main-tenant-ci-key"  # tenant main (conftest)
OTHER_KEY = "axk_second-key"  # tenant other
JOB = {"source": {"type": "url", "url": "http://127.0.0.1/a.mp4"}, "output": {"format": "mp3"}}


def files_under(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def uploads_of(root) -> list[str]:
    return [f for f in files_under(root) if f.startswith("uploads/")]


async def chunks(total: int, size: int = 100):
    for _ in range(total // size):
        yield b"x" * size
        await asyncio.sleep(0)


async def test_a_tenants_upload_count_is_capped(make_client, settings, expect_error):
    async with make_client(upload_quota_count=2) as c:
        first = await c.post("/v1/uploads", content=b"one")
        assert first.status_code == 201
        # every key of the tenant counts towards the same quota
        sibling = await c.post("/v1/uploads", content=b"two", headers={"X-API-Key": SIBLING_KEY})
        assert sibling.status_code == 201
        err = expect_error(await c.post("/v1/uploads", content=b"three"), 413, "QUOTA_EXCEEDED")
        assert "2 uploads" in err["message"]
        assert len(uploads_of(settings.store_root)) == 2
        # another tenant has its own
        theirs = await c.post("/v1/uploads", content=b"x", headers={"X-API-Key": OTHER_KEY})
        assert theirs.status_code == 201
        # an upload that is gone (expired) no longer counts
        os.unlink(settings.store_root / "uploads" / first.json()["data"]["fileId"])
        assert (await c.post("/v1/uploads", content=b"four")).status_code == 201
        text = (await c.get("/metrics")).text
    assert 'audio_extract_api_uploads_refused_total{code="QUOTA_EXCEEDED",tenant="main"} 1.0' in text
    assert 'audio_extract_api_uploads_total{tenant="main"} 3.0' in text


@pytest.mark.parametrize("streamed", [False, True], ids=["declared", "chunked"])
async def test_a_tenants_upload_bytes_are_capped(make_client, settings, expect_error, streamed):
    async with make_client(upload_quota_bytes=1000) as c:
        assert (await c.post("/v1/uploads", content=b"a" * 600)).status_code == 201
        body = chunks(600) if streamed else b"b" * 600
        expect_error(await c.post("/v1/uploads", content=body), 413, "QUOTA_EXCEEDED")
        assert [(settings.store_root / f).stat().st_size for f in uploads_of(settings.store_root)] == [600]
        assert not [f for f in files_under(settings.store_root) if f.endswith(".part")]
        assert (await c.post("/v1/uploads", content=b"c" * 400)).status_code == 201  # exactly full
        r = await c.post("/v1/uploads", content=b"d", headers={"X-API-Key": OTHER_KEY})
        assert r.status_code == 201


async def test_concurrent_uploads_cannot_overrun_the_quota(make_client, settings):
    async with make_client(upload_quota_bytes=1000) as c:
        # declared sizes are reserved at once: the first wins whole
        replies = await asyncio.gather(*(c.post("/v1/uploads", content=b"x" * 600) for _ in range(3)))
        assert sorted(r.status_code for r in replies) == [201, 413, 413]
        # undeclared ones are counted as they arrive: whatever the interleaving, never over
        replies = await asyncio.gather(*(c.post("/v1/uploads", content=chunks(300)) for _ in range(3)))
        assert {r.status_code for r in replies} <= {201, 413} and 413 in {r.status_code for r in replies}
    sizes = [(settings.store_root / f).stat().st_size for f in uploads_of(settings.store_root)]
    assert sum(sizes) <= 1000 and 600 in sizes
    assert not [f for f in files_under(settings.store_root) if f.endswith(".part")]


async def test_a_usage_reading_that_began_before_another_upload_ended_does_not_miss_it(
    make_client, settings, expect_error
):
    """The first upload's reading of the tenant's usage is taken, then answered late (a slow
    object store); a second upload begins and ends meanwhile. The second waits for that reading
    and is counted on top of it, so a quota of one upload holds."""
    async with make_client(upload_quota_count=1) as c:
        store = c.app.state.services.quota.store
        listing = store.list
        readings = 0

        async def slow_list(prefix: str = ""):  # type: ignore[no-untyped-def]
            nonlocal readings
            readings += 1
            items = [item async for item in listing(prefix)]
            if readings == 1:
                await asyncio.sleep(0.5)
            for item in items:
                yield item

        store.list = slow_list

        async def upload(after: float, data: bytes) -> int:
            await asyncio.sleep(after)
            return (await c.post("/v1/uploads", content=data)).status_code

        assert sorted(await asyncio.gather(upload(0, b"first"), upload(0.05, b"second"))) == [201, 413]
        expect_error(await c.post("/v1/uploads", content=b"third"), 413, "QUOTA_EXCEEDED")
    assert len(uploads_of(settings.store_root)) == 1
    assert len(c.app.state.services.quota._readings) == 0


async def test_a_full_store_refuses_new_work_and_says_so_in_metrics(make_client, settings, expect_error):
    settings.store_root.mkdir(parents=True)
    free = shutil.disk_usage(settings.store_root).free
    async with make_client(store_min_free_bytes=free + 10**12, allow_cidrs="127.0.0.0/8") as c:
        kube = FakeKube().install(c.app)
        refusals = [
            await c.post("/v1/uploads", content=b"video"),
            await c.post("/v1/batch", json={"jobs": [JOB]}),
            await c.post("/v1/extract", json=JOB),
        ]
        for r in refusals:
            expect_error(r, 503, "STORE_FULL")
            assert int(r.headers["retry-after"]) > 0
        assert kube.objects == {} and files_under(settings.store_root) == []
        # reading goes on
        expect_error(await c.get("/v1/status/job_0123456789abcd01"), 404, "JOB_NOT_FOUND")
        text = (await c.get("/metrics")).text
    gauge = re.search(r"^audio_extract_api_store_free_bytes ([0-9.e+]+)$", text, re.M)
    assert gauge and float(gauge.group(1)) > 0
    for operation in ("upload", "batch", "extract"):
        assert f'audio_extract_api_store_full_total{{operation="{operation}"}} 1.0' in text
    assert 'audio_extract_api_jobs_refused_total{code="STORE_FULL",tenant="main"} 2.0' in text


async def test_an_upload_too_big_for_the_free_space_is_refused_before_reading(
    make_client, settings, expect_error, monkeypatch
):
    monkeypatch.setattr(FilesystemStore, "free_bytes", lambda _self: 10_000)  # a steady, small disk
    async with make_client(store_min_free_bytes=5_000) as c:
        assert (await c.post("/v1/uploads", content=b"x" * 4_000)).status_code == 201
        expect_error(await c.post("/v1/uploads", content=b"x" * 6_000), 503, "STORE_FULL")
    assert len(uploads_of(settings.store_root)) == 1
