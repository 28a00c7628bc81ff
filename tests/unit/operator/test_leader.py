"""The Lease arithmetic of leader election, and the renewal loop against an API server that fails
or hangs (the loop also runs against a real API server in tests/cluster/operator/test_leader_cluster.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from audio_extract_common.kube import NotFound, Transient
from audio_extract_operator.leader import LeaderElection, Timing, _parse, claimed, expired

NOW = dt.datetime(2026, 12, 2, 12, 0, 0, tzinfo=dt.UTC)


def lease(holder: str | None, renewed: dt.datetime, duration: int = 8, transitions: int = 0) -> dict:
    return {
        "metadata": {"name": "op", "resourceVersion": "7"},
        "spec": {
            "holderIdentity": holder,
            "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "acquireTime": "2026-12-02T11:00:00.000000Z",
            "leaseDurationSeconds": duration,
            "leaseTransitions": transitions,
        },
    }


def test_a_lease_lapses_only_after_its_duration_since_the_last_renewal() -> None:
    assert not expired(lease("a", NOW - dt.timedelta(seconds=7.9)), NOW)
    assert expired(lease("a", NOW - dt.timedelta(seconds=8.1)), NOW)
    assert expired(lease(None, NOW), NOW)  # released: free at once
    assert expired({"spec": {}}, NOW)


def test_renewing_keeps_the_acquire_time_and_taking_over_counts_a_transition() -> None:
    mine = lease("a", NOW - dt.timedelta(seconds=1), transitions=2)
    renewed = claimed(mine, "a", Timing(), NOW)
    assert renewed["spec"]["acquireTime"] == mine["spec"]["acquireTime"]
    assert renewed["spec"]["renewTime"] == "2026-12-02T12:00:00.000000Z"
    assert renewed["spec"]["leaseTransitions"] == 2
    # the resourceVersion goes back with the update: a concurrent writer makes it a conflict
    assert renewed["metadata"]["resourceVersion"] == "7"

    taken = claimed(lease("a", NOW - dt.timedelta(seconds=30), transitions=2), "b", Timing(), NOW)
    assert taken["spec"]["holderIdentity"] == "b"
    assert taken["spec"]["acquireTime"] == "2026-12-02T12:00:00.000000Z"
    assert taken["spec"]["leaseTransitions"] == 3
    assert taken["spec"]["leaseDurationSeconds"] == 8


def test_the_leader_stops_before_a_standby_may_start() -> None:
    t = Timing()
    assert t.renew_deadline < t.lease_duration
    assert t.lease_duration + t.retry_period <= 10  # the takeover the chart promises


# short enough for a unit test, with the production ratios' margins (a standby may take over at 1.5 s)
FAST = Timing(lease_duration=1.5, renew_deadline=1.0, retry_period=0.1)


class Api:
    """One Lease's API: the first `ok_calls` calls are answered, then `trouble` is raised for
    `trouble_for` seconds, then every call hangs."""

    def __init__(self, ok_calls: int, trouble: Exception, trouble_for: float) -> None:
        self.lease: dict[str, Any] | None = None
        self.ok_calls, self.trouble, self.trouble_for = ok_calls, trouble, trouble_for
        self.calls = 0
        self.troubled_at: float | None = None

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None, **_kw: Any) -> Any:
        self.calls += 1
        if self.calls > self.ok_calls:
            now = asyncio.get_running_loop().time()
            self.troubled_at = self.troubled_at or now
            if now - self.troubled_at < self.trouble_for:
                raise self.trouble
            await asyncio.Event().wait()
        if method == "GET":
            if self.lease is None:
                raise NotFound(404, "NotFound", "")
            return dict(self.lease)
        self.lease = body
        return body


def election(api: Api, lost: list[dt.datetime]) -> LeaderElection:
    return LeaderElection(
        api,  # type: ignore[arg-type]
        "ns",
        "op",
        "me",
        FAST,
        on_lost=lambda: lost.append(dt.datetime.now(dt.UTC)),
    )


def lost_after_renewal(api: Api, lost: list[dt.datetime]) -> float:
    assert api.lease is not None and lost
    renewed = _parse(api.lease["spec"]["renewTime"])
    assert renewed is not None
    return (lost[0] - renewed).total_seconds()


async def test_a_leader_stops_within_the_deadline_of_its_last_renewal_when_calls_fail_then_hang() -> None:
    """503s for most of the deadline, then a connection that hangs: the hanging attempt gets what
    is left of the deadline, not a fresh one, so the leader stops before a standby may start."""
    api = Api(ok_calls=4, trouble=Transient(503, "ServiceUnavailable", "x"), trouble_for=0.7)
    lost: list[dt.datetime] = []
    leader = election(api, lost)
    await leader.acquire()  # GET + POST; the first renewal is GET + PUT, then trouble
    await asyncio.wait_for(leader.hold(), 5)
    assert not leader.leading
    assert lost_after_renewal(api, lost) < FAST.lease_duration


async def test_an_unexpected_error_while_renewing_is_a_failed_renewal_not_the_end_of_renewing() -> None:
    """A proxy's non-JSON answer, say: renewing goes on, and the leader stops at the deadline."""
    api = Api(ok_calls=4, trouble=ValueError("not JSON"), trouble_for=60)
    lost: list[dt.datetime] = []
    leader = election(api, lost)
    await leader.acquire()
    await asyncio.wait_for(leader.hold(), 5)
    assert api.calls > 6  # retried after the first odd answer
    assert not leader.leading
    assert lost_after_renewal(api, lost) < FAST.lease_duration


async def test_the_renewal_task_ending_other_than_by_cancellation_stops_the_leader() -> None:
    lost: list[dt.datetime] = []
    leader = election(Api(ok_calls=2, trouble=ValueError(), trouble_for=0), lost)
    await leader.acquire()

    async def broken() -> None:
        raise RuntimeError("a bug")

    leader.hold = broken  # type: ignore[method-assign]
    task = leader.holding()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    assert len(lost) == 1 and not leader.leading

    calm = election(Api(ok_calls=100, trouble=ValueError(), trouble_for=0), [])
    await calm.acquire()
    task = calm.holding()
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)
    assert calm.leading  # a stop asked for is no lost Lease (release hands it over)


async def test_a_leader_that_finds_the_lease_taken_stops_at_once() -> None:
    api = Api(ok_calls=100, trouble=ValueError(), trouble_for=0)
    lost: list[dt.datetime] = []
    leader = election(api, lost)
    await leader.acquire()
    api.lease = claimed(api.lease, "other", FAST, dt.datetime.now(dt.UTC))  # a takeover after a pause
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(leader.hold(), 5)
    assert lost and asyncio.get_running_loop().time() - started < FAST.renew_deadline / 2
