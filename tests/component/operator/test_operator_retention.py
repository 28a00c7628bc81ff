"""Retention: one batch that fails does not stop the pass; outputs never outlive their batch,
whether it was deleted by retention, by hand while the operator watched, or while it was down.
The tests at the end run on both stores: a temporary directory and a real S3 server."""

from __future__ import annotations

import contextlib
import os
import time
from datetime import timedelta
from pathlib import Path

import kopf
from operator_fakeapi import NS, FakeApi, job_name, terminal_status
from operator_store import StoreUnderTest, next_second

from audio_extract_common import ids
from audio_extract_common.kube import Forbidden, KubeError
from audio_extract_common.timefmt import iso, now
from audio_extract_operator import handlers, loops
from audio_extract_operator.state import OperatorState
from support.operator_settings import operator_settings


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


def operator_state(api: FakeApi, **settings: object) -> OperatorState:
    return OperatorState(operator_settings(**{"progress__port": 0, **settings}), api)  # type: ignore[arg-type]


async def retention(state: OperatorState) -> None:
    await loops.retention_pass(state.kube, state.settings, state.registry, state.reconciler)


async def test_one_failing_batch_does_not_stop_the_retention_pass() -> None:
    api = FakeApi()
    for name in ("b1", "b2", "b3"):
        key = key_of(api.add_batch(name))
        api.edit("extractionbatches", NS, name, {"status": terminal_status(key, 1)})

    def refuse_b2(method: str, path: str, _q: dict[str, str]) -> KubeError | None:
        return Forbidden(403, "Forbidden", "no") if method == "DELETE" and path.endswith("/b2") else None

    api.fail = refuse_b2
    await retention(operator_state(api, retention__record_seconds=0))
    assert api.names("extractionbatches") == ["b2"]


async def test_deleting_a_batch_by_hand_removes_its_outputs(tmp_path: Path) -> None:
    api = FakeApi()
    state = operator_state(api, store__root=tmp_path)
    memo = kopf.Memo()
    memo.state = state
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
    await retention(operator_state(api, store__root=tmp_path, retention__orphan_grace_seconds=3600))
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
        await retention(
            operator_state(api, store__root=tmp_path, list_page_size=1, retention__orphan_grace_seconds=0)
        )
    assert len(list(tmp_path.iterdir())) == 3


async def test_a_deleted_batchs_jobs_are_not_taken_for_lost_ones(tmp_path: Path) -> None:
    """Background deletion: the batch is gone, then the garbage collector deletes its Jobs."""
    api = FakeApi()
    state = operator_state(api, store__root=tmp_path)
    memo = kopf.Memo()
    memo.state = state
    body = api.add_batch("b", jobs=1)
    await state.reconciler.batch(body)
    job = api.get("jobs", NS, job_name(body, 0))
    api.delete_by_hand("extractionbatches", NS, "b")
    api.delete_by_hand("jobs", NS, job_name(body, 0))
    await handlers.job_event(type="DELETED", body=job, memo=memo)
    assert api.get("jobs", NS, job_name(body, 0)) is None


async def test_a_late_deletion_event_spares_a_successor_of_the_same_name(tmp_path: Path) -> None:
    """The API names batches by key: a batch deleted and made again has the same job ids."""
    api = FakeApi()
    state = operator_state(api, store__root=tmp_path)
    memo = kopf.Memo()
    memo.state = state
    name = "batch-0123456789abcd00"
    old = api.delete_by_hand("extractionbatches", NS, api.add_batch(name)["metadata"]["name"])
    new = api.add_batch(name)
    await handlers.batch_event(type="ADDED", body=new, memo=memo)
    outputs(tmp_path, "job_0123456789abcd01")  # the successor's
    await handlers.batch_event(type="DELETED", body=old, memo=memo)
    assert (tmp_path / "job_0123456789abcd01").exists()
    assert state.registry.keys["0123456789abcd"] == (NS, name)


async def test_retention_goes_on_when_the_job_listing_fails() -> None:
    """Without a listing of Jobs there is no resync this pass, but retention still runs."""
    api = FakeApi()
    key = key_of(api.add_batch("old"))
    api.edit("extractionbatches", NS, "old", {"status": terminal_status(key, 1)})

    def no_jobs(method: str, path: str, _q: dict[str, str]) -> KubeError | None:
        return Forbidden(403, "Forbidden", "no") if method == "GET" and path.endswith("/jobs") else None

    api.fail = no_jobs
    await retention(operator_state(api, retention__record_seconds=0))
    assert api.names("extractionbatches") == []


# --- the same on both stores: a temporary directory and a real S3 server (``store``) ------------

GRACE = 3600


async def test_deleting_a_batch_removes_its_outputs_from_either_store(store: StoreUnderTest) -> None:
    api = FakeApi()
    memo = kopf.Memo()
    memo.state = store.operator_state(api)
    doomed, kept = api.add_batch("doomed", jobs=2), api.add_batch("kept", jobs=1)
    d0, d1, k0 = ids.job_id(key_of(doomed), 0), ids.job_id(key_of(doomed), 1), ids.job_id(key_of(kept), 0)
    # job ids sharing a prefix: job_…01 must not take job_…010's (or a longer id's) objects along
    await store.put(f"{d0}/talk.mp3", f"{d1}/audio.aac", f"{d1}/more/x", f"{k0}/a.wav", f"{d0}0/x")
    await store.put("uploads/upl_00112233445566ff")
    await handlers.batch_event(
        type="DELETED", body=api.delete_by_hand("extractionbatches", NS, "doomed"), memo=memo
    )
    assert await store.keys() == {f"{k0}/a.wav", f"{d0}0/x", "uploads/upl_00112233445566ff"}


async def test_outputs_of_gone_batches_are_swept_from_either_store_after_the_grace(
    store: StoreUnderTest,
) -> None:
    api = FakeApi()
    live = ids.job_id(key_of(api.add_batch("live", jobs=1)), 0)
    old = [f"{live}/a.mp3", "job_0123456789abcd01/a.mp3", "job_0123456789abcd02/x/b.wav"]
    others = ["uploads/upl_00112233445566ff", "notes/job_0123456789abcd03", "job_ffffffffffffff00/x"]
    await store.put(*old, *others)
    await next_second()
    # too recent to judge (its batch may be newer than the listing), though it has an old object
    await store.put("job_fedcba9876543201/a.mp3", "job_fedcba9876543201/b.mp3")
    state = store.operator_state(api, retention__orphan_grace_seconds=GRACE)
    state.reconciler.clock = store.clock_at(await store.newest(*old), GRACE)
    await retention(state)
    assert await store.keys() == {
        f"{live}/a.mp3",
        *others,
        "job_fedcba9876543201/a.mp3",
        "job_fedcba9876543201/b.mp3",
    }
    state.reconciler.clock = store.clock_at(await store.newest("job_fedcba9876543201/b.mp3"), GRACE)
    await retention(state)  # now old enough
    assert await store.keys() == {f"{live}/a.mp3", *others}


async def test_no_output_is_swept_from_either_store_after_an_incomplete_listing(
    store: StoreUnderTest,
) -> None:
    api = FakeApi()
    for i in range(3):
        api.add_batch(f"b{i}")
    outs = {f"{ids.job_id(key_of(api.get('extractionbatches', NS, f'b{i}')), 0)}/a.mp3" for i in range(3)}
    await store.put(*outs)

    def second_page_fails(method: str, path: str, q: dict[str, str]) -> KubeError | None:
        if method == "GET" and path.endswith("/extractionbatches") and q.get("continue"):
            return KubeError(410, "Expired", "the continue token expired")
        return None

    api.fail = second_page_fails
    state = store.operator_state(api, list_page_size=1, retention__orphan_grace_seconds=0)
    with contextlib.suppress(KubeError):
        await retention(state)
    assert await store.keys() == outs
    api.fail = None
    await retention(state)  # complete, and every batch is there
    assert await store.keys() == outs


async def test_expired_outputs_go_and_the_batch_with_its_outputs_after_record_retention(
    store: StoreUnderTest,
) -> None:
    api = FakeApi()
    body = api.add_batch("done", jobs=2)
    key = key_of(body)
    status = terminal_status(key, 2)
    status["completedAt"] = iso(now())  # record retention (7 days) has not passed
    status["jobs"][0]["expiresAt"] = iso(now() - timedelta(seconds=1))
    status["jobs"][1]["expiresAt"] = iso(now() + timedelta(days=1))
    api.edit("extractionbatches", NS, "done", {"status": status})
    j0, j1 = ids.job_id(key, 0), ids.job_id(key, 1)
    await store.put(f"{j0}/talk.mp3", f"{j1}/talk.mp3", "job_0123456789abcd01/other.mp3")
    state = store.operator_state(api, retention__orphan_grace_seconds=10**9)
    await retention(state)
    assert await store.keys() == {f"{j1}/talk.mp3", "job_0123456789abcd01/other.mp3"}
    entries = api.get("extractionbatches", NS, "done")["status"]["jobs"]
    assert [j.get("expired") for j in entries] == [True, False]
    await retention(
        store.operator_state(api, retention__record_seconds=0, retention__orphan_grace_seconds=10**9)
    )
    assert api.names("extractionbatches") == []
    assert await store.keys() == {"job_0123456789abcd01/other.mp3"}


async def test_an_empty_job_directory_of_a_gone_batch_is_swept_from_the_volume(tmp_path: Path) -> None:
    """The kubelet makes a job's directory for its mount; a job that failed leaves it empty."""
    api = FakeApi()
    (tmp_path / "job_0123456789abcd01").mkdir()
    (tmp_path / "job_0123456789abcd02").mkdir()
    os.utime(tmp_path / "job_0123456789abcd01", (0, 0))
    await retention(operator_state(api, store__root=tmp_path, retention__orphan_grace_seconds=GRACE))
    assert [p.name for p in tmp_path.iterdir()] == ["job_0123456789abcd02"]
