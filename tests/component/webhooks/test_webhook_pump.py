"""The delivery loop (Pump): event-driven, one tick per batch at a time, a slow receiver holds only
its own batch, a failed status write is retried after a pause without resending."""

from __future__ import annotations

import asyncio
import copy
import time

import jsonpatch
import pytest
from test_webhook_driver import SECRET, config

from audio_extract_dev.webhook_receiver import Receiver, Reply
from audio_extract_operator.webhooks.pump import Pump
from support.webhook_batches import Store, make_store


class VersionedStore(Store):
    """Like the API server: every write bumps resourceVersion and returns the written object."""

    def __init__(self, *a, name: str = "b", uid: str | None = None, **kw) -> None:
        super().__init__(*a, **kw)
        self.obj["metadata"].update(name=name, resourceVersion="1")
        if uid:
            self.obj["metadata"]["uid"] = uid

    async def patch(self, namespace: str, name: str, ops: list[dict]) -> dict:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("API server unavailable")
        self.patches.append(ops)
        self.obj = jsonpatch.apply_patch(self.obj, ops)
        self.obj["metadata"]["resourceVersion"] = str(int(self.obj["metadata"]["resourceVersion"]) + 1)
        return copy.deepcopy(self.obj)


def versioned(n: int, url: str, name: str, uid: str) -> VersionedStore:
    base = make_store(n, url)
    store = VersionedStore(base.obj["spec"], base.obj["status"], name=name, uid=uid)
    return store


class Router:
    """Routes each batch's patches to its own store (the pump has one patch function)."""

    def __init__(self, *stores: VersionedStore) -> None:
        self.stores = {s.obj["metadata"]["name"]: s for s in stores}

    async def patch(self, namespace: str, name: str, ops: list[dict]) -> dict:
        return await self.stores[name].patch(namespace, name, ops)


async def until(predicate, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.02)


@pytest.fixture
async def pumps():
    made: list[tuple[Pump, asyncio.Task]] = []

    def make(patch, **kw) -> Pump:
        pump = Pump(config(poll_interval=0.2, **kw), patch)
        made.append((pump, asyncio.create_task(pump.run())))
        return pump

    yield make
    for pump, task in made:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pump.aclose()


async def test_event_wakes_the_loop_and_finished_batches_go_quiet(pumps):
    with Receiver(SECRET) as rx:
        store = versioned(2, rx.url, "b", "uid-1")
        pump = pumps(Router(store).patch)
        started = time.monotonic()
        pump.observe(copy.deepcopy(store.obj))
        await until(lambda: len(rx.received) == 3 and "webhook" in store.obj["status"], 5)
        took = time.monotonic() - started
        await asyncio.sleep(0.5)  # more passes: nothing more to do
    assert took < 1.0
    assert len(rx.received) == 3 and len(store.patches) == 1
    assert pump.bodies == {} and pump.ticking == {}  # written result observed: inactive
    assert pump.driver._memory == {}  # nothing kept for finished batches (no growth over time)
    pump.observe(copy.deepcopy(store.obj))  # a late watch event of the same state changes nothing
    assert pump.bodies == {}


async def test_a_slow_receiver_holds_only_its_own_batch(pumps):
    def slow(_r, _n):
        time.sleep(2.0)
        return Reply(200)

    with Receiver(SECRET, slow) as slow_rx, Receiver(SECRET) as fast_rx:
        a = versioned(1, slow_rx.url, "a", "uid-a")
        b = versioned(1, fast_rx.url, "b", "uid-b")
        pump = pumps(Router(a, b).patch)
        pump.observe(copy.deepcopy(a.obj))
        await until(lambda: len(slow_rx.received) >= 1, 5)
        started = time.monotonic()
        pump.observe(copy.deepcopy(b.obj))
        await until(lambda: "webhook" in b.obj["status"], 5)
        assert time.monotonic() - started < 1.0
        assert "webhook" not in a.obj["status"]  # still in flight
        await until(lambda: "webhook" in a.obj["status"], 10)
    assert [r.payload["event"] for r in slow_rx.received].count("job.completed") == 1


async def test_failed_write_is_retried_after_a_pause_without_resending(pumps):
    with Receiver(SECRET) as rx:
        store = versioned(1, rx.url, "b", "uid-1")
        store.fail_next = 3
        pump = pumps(Router(store).patch)
        pump.observe(copy.deepcopy(store.obj))
        await until(lambda: "webhook" in store.obj["status"], 5)
    assert len(rx.received) == 2  # job + batch, each once, although three writes failed
    assert store.obj["status"]["jobs"][0]["webhook"]["state"] == "delivered"
    assert len(store.patches) == 1


async def test_stale_events_and_deletion(pumps):
    with Receiver(SECRET, lambda _r, _n: Reply(503)) as rx:
        store = versioned(1, rx.url, "b", "uid-1")
        pump = pumps(Router(store).patch, schedule=(3600.0,))
        old = copy.deepcopy(store.obj)
        pump.observe(old)
        await until(lambda: "webhook" in store.obj["status"], 5)
        assert pump.bodies["uid-1"]["metadata"]["resourceVersion"] == "2"  # the written object
        pump.observe(old)  # an older event arriving late is ignored
        assert pump.bodies["uid-1"]["metadata"]["resourceVersion"] == "2"
        pump.observe(copy.deepcopy(store.obj), deleted=True)
        assert "uid-1" not in pump.bodies
    assert len(rx.received) == 2  # the retry is an hour away: no second attempt


async def test_a_late_event_after_the_batch_went_quiet_sends_nothing_again(pumps):
    """The watch echoes writes late: an event older than the recorded deliveries, arriving after
    the batch went quiet, must not look like an owed delivery (it did: a duplicate, same id)."""
    with Receiver(SECRET) as rx:
        store = versioned(2, rx.url, "b", "uid-1")
        pump = pumps(Router(store).patch)
        before_records = copy.deepcopy(store.obj)
        pump.observe(copy.deepcopy(store.obj))
        await until(lambda: len(rx.received) == 3 and "webhook" in store.obj["status"], 5)
        assert pump.bodies == {}  # quiet
        pump.observe(before_records)  # the watch's late copy of the terminal write
        await asyncio.sleep(0.6)  # more than a poll interval
    assert len(rx.received) == 3 and len(store.patches) == 1
    assert pump.bodies == {}


class AnswerLost(VersionedStore):
    """Applies the first write, but its answer never arrives (a client timeout)."""

    lost = False

    async def patch(self, namespace: str, name: str, ops: list[dict]) -> dict:
        written = await super().patch(namespace, name, ops)
        if not self.lost:
            self.lost = True
            raise TimeoutError("answer lost")
        return written


async def test_a_write_applied_but_reported_failed_goes_quiet_once_the_watch_shows_it(pumps):
    with Receiver(SECRET) as rx:
        base = versioned(1, rx.url, "b", "uid-1")
        store = AnswerLost(base.obj["spec"], base.obj["status"], name="b", uid="uid-1")
        pump = pumps(Router(store).patch)
        pump.observe(copy.deepcopy(store.obj))
        await until(lambda: store.lost, 5)
        pump.observe(copy.deepcopy(store.obj))  # the watch's event of the applied write
        await until(lambda: pump.bodies == {}, 2)
        ticks = pump.ticks
        await asyncio.sleep(0.6)  # more than a poll interval
    assert pump.ticks == ticks and pump.ticking == {}
    assert not pump.driver.remembers("uid-1") and pump.driver._memory == {}
    assert len(rx.received) == 2 and len(store.patches) == 1
