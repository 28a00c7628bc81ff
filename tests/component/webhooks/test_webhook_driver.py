"""The delivery driver against a real receiver, with status kept in a dict that JSON patches apply to
(the same ops the API server gets; the cluster tests cover the API server itself)."""

from __future__ import annotations

import base64
import copy
import os
from datetime import UTC, datetime, timedelta

import pytest

from audio_extract_dev.webhook_receiver import Receiver, Reply
from audio_extract_operator.webhooks.config import WebhookSettings
from audio_extract_operator.webhooks.driver import Driver, needs_work
from support.webhook_batches import Store, job_id, make_store

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


def config(**kw) -> WebhookSettings:
    base = {
        "secret": SECRET,
        "allow_cidrs": "127.0.0.1/32",
        "timeout": 3.0,
        "schedule": (0.0,) * 3,
        "jitter": 0.0,
    }
    return WebhookSettings(**{**base, **kw})


@pytest.fixture
async def driver_for():
    made: list[Driver] = []

    def make(store: Store, **kw) -> Driver:
        d = Driver(config(**kw), store.patch)
        made.append(d)
        return d

    yield make
    for d in made:
        await d.aclose()


async def test_each_event_once_verified_and_recorded(driver_for):
    with Receiver(SECRET) as rx:
        store = make_store(3, rx.url, ["completed", "failed", "cancelled"])
        driver = driver_for(store)
        await driver.tick(*store.view())
        await driver.tick(*store.view())  # nothing more is due
    events = sorted((r.payload["event"], r.payload.get("jobId")) for r in rx.received)
    assert events == [
        ("batch.completed", None),
        ("job.completed", job_id(0)),
        ("job.failed", job_id(1)),
        ("job.failed", job_id(2)),
    ]
    assert all(r.verified for r in rx.received)
    assert len({r.id for r in rx.received}) == 4
    status = store.obj["status"]
    for i, job in enumerate(status["jobs"]):
        hook = job["webhook"]
        assert (hook["state"], hook["attempts"], hook["lastStatusCode"]) == ("delivered", 1, 200)
        assert hook["id"] == next(r.id for r in rx.received if r.payload.get("jobId") == job_id(i))
    assert status["webhook"]["event"] == "batch.completed" and status["webhook"]["state"] == "delivered"
    assert len(store.patches) == 1  # one write per batch per tick
    assert not needs_work(store.obj["spec"], status)


async def test_only_terminal_jobs_and_batch_event_waits_for_all(driver_for):
    with Receiver(SECRET) as rx:
        store = make_store(2, rx.url, ["completed", "processing"])
        driver = driver_for(store)
        await driver.tick(*store.view())
        assert [r.payload["event"] for r in rx.received] == ["job.completed"]
        store.obj["status"]["jobs"][1].update(status="failed", error={"code": "TIMEOUT", "message": "m"})
        await driver.tick(*store.view())
    assert sorted(r.payload["event"] for r in rx.received) == [
        "batch.completed",
        "job.completed",
        "job.failed",
    ]


async def test_job_webhook_overrides_and_batch_event_goes_to_batch_url(driver_for):
    with Receiver(SECRET) as batch_rx, Receiver(SECRET) as job_rx:
        store = make_store(2, batch_rx.url, own={1: job_rx.url + "own"})
        await driver_for(store).tick(*store.view())
    assert sorted(r.payload["event"] for r in batch_rx.received) == ["batch.completed", "job.completed"]
    assert [(r.path, r.payload["jobId"]) for r in job_rx.received] == [("/own", job_id(1))]


async def test_500_three_times_then_200_four_attempts_same_id(driver_for):
    with Receiver(SECRET, lambda _r, n: Reply(500 if n < 3 else 200)) as rx:
        store = make_store(1, rx.url)
        store.obj["spec"]["webhook"] = None
        store.obj["spec"]["jobs"][0]["options"] = {"webhook": rx.url}
        driver = driver_for(store)
        t = datetime.now(UTC)
        for step in range(10):
            if not needs_work(store.obj["spec"], store.obj["status"]):
                break
            # the zero-delay schedule rounds up to the next second: step the clock instead of sleeping
            driver.clock = lambda s=step: t + timedelta(seconds=s)
            await driver.tick(*store.view())
    assert [r.id for r in rx.received] == [rx.received[0].id] * 4
    hook = store.obj["status"]["jobs"][0]["webhook"]
    assert (hook["state"], hook["attempts"], hook["lastStatusCode"]) == ("delivered", 4, 200)


async def test_gives_up_after_the_schedule_and_never_tries_again(driver_for):
    with Receiver(SECRET, lambda _r, _n: Reply(503)) as rx:
        store = make_store(1, rx.url)
        store.obj["spec"]["webhook"] = None
        store.obj["spec"]["jobs"][0]["options"] = {"webhook": rx.url}
        driver = driver_for(store)
        t = datetime.now(UTC)
        for step in range(12):
            driver.clock = lambda s=step: t + timedelta(seconds=s)
            await driver.tick(*store.view())
    assert len(rx.received) == 4  # 1 + len(schedule)
    hook = store.obj["status"]["jobs"][0]["webhook"]
    assert (hook["state"], hook["attempts"], hook["lastStatusCode"]) == ("failed", 4, 503)
    assert "nextAttemptAt" not in hook


async def test_stale_view_or_reverted_status_is_restored_not_resent(driver_for):
    with Receiver(SECRET) as rx:
        store = make_store(2, rx.url)
        driver = driver_for(store)
        stale = store.view()
        await driver.tick(*store.view())
        assert len(rx.received) == 3
        await driver.tick(*stale)  # the watch has not shown our write yet
        # another writer put back the entries as they were before (an old copy of status.jobs)
        store.obj["status"]["jobs"] = copy.deepcopy(stale[2].model_dump(mode="json")["jobs"])
        await driver.tick(*store.view())
    assert len(rx.received) == 3
    assert [j["webhook"]["state"] for j in store.obj["status"]["jobs"]] == ["delivered", "delivered"]


async def test_failed_record_write_is_retried_without_resending(driver_for):
    with Receiver(SECRET) as rx:
        store = make_store(1, rx.url)
        driver = driver_for(store)
        store.fail_next = 1
        await driver.tick(*store.view())
        assert "webhook" not in store.obj["status"]["jobs"][0]
        await driver.tick(*store.view())
    assert len(rx.received) == 2  # job + batch, once each
    assert store.obj["status"]["jobs"][0]["webhook"]["state"] == "delivered"


async def test_restart_that_lost_the_record_resends_with_the_same_id(driver_for):
    with Receiver(SECRET) as rx:
        store = make_store(1, rx.url)
        store.fail_next = 1
        await driver_for(store).tick(*store.view())  # sent, then "crashed" before recording
        await driver_for(store).tick(*store.view())  # a new process
    assert len(rx.received) == 4
    by_id = rx.by_id()
    assert len(by_id) == 2 and all(len(v) == 2 for v in by_id.values())
    assert store.obj["status"]["jobs"][0]["webhook"]["attempts"] == 1


async def test_blocked_target_is_recorded_failed(driver_for):
    with Receiver(SECRET) as rx:
        store = make_store(1, f"http://localhost:{rx.port}/")
        await driver_for(store, allow_cidrs="").tick(*store.view())
    assert rx.received == []
    hook = store.obj["status"]["jobs"][0]["webhook"]
    assert hook["state"] == "failed" and "not a public address" in hook["lastError"]


async def test_no_secret_means_disabled(driver_for):
    with Receiver(SECRET) as rx:
        store = make_store(1, rx.url)
        await driver_for(store, secret="").tick(*store.view())
    assert rx.received == [] and store.patches == []


async def test_the_after_attempts_hook_runs_after_sending_and_before_recording(driver_for):
    """The fault point the cluster tests use (``support.faults``): called once per round of
    attempts, when the receiver has the requests and the status has no record of them yet."""
    seen: list[tuple[int, int]] = []
    with Receiver(SECRET) as rx:
        store = make_store(2, rx.url)
        driver = driver_for(store)
        driver.after_attempts = lambda: seen.append((len(rx.received), len(store.patches)))
        await driver.tick(*store.view())
        await driver.tick(*store.view())  # nothing due: no attempts, no call
    assert seen == [(3, 0)]
    assert len(store.patches) == 1


class AnswerLost(Store):
    """The API server applies the next write, but its answer never arrives (a client timeout)."""

    def __init__(self, base: Store) -> None:
        super().__init__(base.obj["spec"], base.obj["status"])
        self.lose_next = 1

    async def patch(self, namespace: str, name: str, ops: list[dict]) -> None:
        await super().patch(namespace, name, ops)
        if self.lose_next:
            self.lose_next -= 1
            raise TimeoutError("answer lost")


async def test_a_write_applied_but_reported_failed_is_forgotten_once_status_shows_it(driver_for):
    with Receiver(SECRET) as rx:
        store = AnswerLost(make_store(1, rx.url))
        driver = driver_for(store)
        ref = store.view()[0]
        await driver.tick(*store.view())
        assert driver.remembers(ref.uid)  # as far as this process knows, the write failed
        await driver.tick(*store.view())  # the watch shows the write
    assert len(rx.received) == 2 and len(store.patches) == 1
    assert not driver.remembers(ref.uid)  # nothing left to write: no tick, nothing kept, until deletion
    assert driver._memory == {}
