"""Retention: one batch that fails does not stop the pass; outputs never outlive their batch,
whether it was deleted by retention, by hand while the operator watched, or while it was down."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import kopf
from operator_fakeapi import NS, FakeApi, job_name, terminal_status

from audio_extract_common import ids
from audio_extract_operator import handlers, loops
from audio_extract_operator.kube import Forbidden, KubeError
from audio_extract_operator.settings import Settings


def outputs(root: Path, *job_ids: str, age: float = 0.0) -> None:
    for job_id in job_ids:
        out = root / job_id
        out.mkdir(parents=True, exist_ok=True)
        (out / "a.mp3").write_bytes(b"x")
        when = time.time() - age
        os.utime(out / "a.mp3", (when, when))
        os.utime(out, (when, when))


def key_of(body: dict) -> str:
    return ids.batch_key(body["metadata"]["name"], body["metadata"]["uid"])


def context(api: FakeApi, **settings: object) -> handlers.Context:
    return handlers.Context(Settings(**{"progress_port": 0, **settings}), api)  # type: ignore[arg-type]


async def retention(ctx: handlers.Context) -> None:
    await loops.retention_pass(ctx.kube, ctx.settings, ctx.registry, ctx.reconciler)


async def test_one_failing_batch_does_not_stop_the_retention_pass() -> None:
    api = FakeApi()
    for name in ("b1", "b2", "b3"):
        key = key_of(api.add_batch(name))
        api.edit("extractionbatches", NS, name, {"status": terminal_status(key, 1)})

    def refuse_b2(method: str, path: str, _q: dict[str, str]) -> KubeError | None:
        return Forbidden(403, "Forbidden", "no") if method == "DELETE" and path.endswith("/b2") else None

    api.fail = refuse_b2
    await retention(context(api, record_retention_seconds=0))
    assert api.names("extractionbatches") == ["b2"]


async def test_deleting_a_batch_by_hand_removes_its_outputs(tmp_path: Path) -> None:
    api = FakeApi()
    ctx = context(api, store_root=tmp_path)
    memo = kopf.Memo()
    memo.ctx = ctx
    doomed, kept = api.add_batch("doomed", jobs=2), api.add_batch("kept", jobs=1)
    outputs(tmp_path, *(ids.job_id(key_of(doomed), i) for i in (0, 1)), ids.job_id(key_of(kept), 0))
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "upl_00112233445566ff").write_bytes(b"u")
    await handlers.batch_event(
        type="DELETED", body=api.delete_by_hand("extractionbatches", NS, "doomed"), memo=memo
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ids.job_id(key_of(kept), 0), "uploads"])
    assert (tmp_path / "uploads" / "upl_00112233445566ff").exists()


async def test_the_retention_pass_removes_outputs_whose_batch_is_gone(tmp_path: Path) -> None:
    """A batch deleted while the operator was down (or whose DELETED event was lost)."""
    api = FakeApi()
    live = api.add_batch("live", jobs=1)
    outputs(tmp_path, ids.job_id(key_of(live), 0), age=7200)
    outputs(tmp_path, "job_0123456789abcd01", "job_0123456789abcd02", age=7200)  # batch gone long ago
    outputs(tmp_path, "job_fedcba9876543201", age=60)  # too recent to judge: its batch may be new
    (tmp_path / "uploads").mkdir()
    (tmp_path / "notes").mkdir()
    os.utime(tmp_path / "uploads", (0, 0))
    await retention(context(api, store_root=tmp_path, orphan_grace_seconds=3600))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [ids.job_id(key_of(live), 0), "job_fedcba9876543201", "uploads", "notes"]
    )


async def test_no_output_is_swept_after_an_incomplete_listing(tmp_path: Path) -> None:
    api = FakeApi()
    for i in range(3):
        api.add_batch(f"b{i}")
    outputs(
        tmp_path,
        *(ids.job_id(key_of(api.get("extractionbatches", NS, f"b{i}")), 0) for i in range(3)),
        age=7200,
    )

    def second_page_fails(method: str, path: str, q: dict[str, str]) -> KubeError | None:
        if method == "GET" and path.endswith("/extractionbatches") and q.get("continue"):
            return KubeError(410, "Expired", "the continue token expired")
        return None

    api.fail = second_page_fails
    with contextlib.suppress(KubeError):
        await retention(context(api, store_root=tmp_path, list_page_size=1, orphan_grace_seconds=0))
    assert len(list(tmp_path.iterdir())) == 3


async def test_a_deleted_batchs_jobs_are_not_taken_for_lost_ones(tmp_path: Path) -> None:
    """Background deletion: the batch is gone, then the garbage collector deletes its Jobs."""
    api = FakeApi()
    ctx = context(api, store_root=tmp_path)
    memo = kopf.Memo()
    memo.ctx = ctx
    body = api.add_batch("b", jobs=1)
    await ctx.reconciler.batch(body)
    job = api.get("jobs", NS, job_name(body, 0))
    api.delete_by_hand("extractionbatches", NS, "b")
    api.delete_by_hand("jobs", NS, job_name(body, 0))
    await handlers.job_event(type="DELETED", body=job, memo=memo)
    assert api.get("jobs", NS, job_name(body, 0)) is None


async def test_a_late_deletion_event_spares_a_successor_of_the_same_name(tmp_path: Path) -> None:
    """The API names batches by key: a batch deleted and made again has the same job ids."""
    api = FakeApi()
    ctx = context(api, store_root=tmp_path)
    memo = kopf.Memo()
    memo.ctx = ctx
    name = "batch-0123456789abcd00"
    old = api.delete_by_hand("extractionbatches", NS, api.add_batch(name)["metadata"]["name"])
    new = api.add_batch(name)
    await handlers.batch_event(type="ADDED", body=new, memo=memo)
    outputs(tmp_path, "job_0123456789abcd01")  # the successor's
    await handlers.batch_event(type="DELETED", body=old, memo=memo)
    assert (tmp_path / "job_0123456789abcd01").exists()
    assert ctx.registry.keys["0123456789abcd"] == (NS, name)


async def test_retention_goes_on_when_the_job_listing_fails() -> None:
    """Without a listing of Jobs there is no resync this pass, but retention still runs."""
    api = FakeApi()
    key = key_of(api.add_batch("old"))
    api.edit("extractionbatches", NS, "old", {"status": terminal_status(key, 1)})

    def no_jobs(method: str, path: str, _q: dict[str, str]) -> KubeError | None:
        return Forbidden(403, "Forbidden", "no") if method == "GET" and path.endswith("/jobs") else None

    api.fail = no_jobs
    await retention(context(api, record_retention_seconds=0))
    assert api.names("extractionbatches") == []
