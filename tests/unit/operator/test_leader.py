"""The Lease arithmetic of leader election (the loop itself runs against a real API server in
tests/cluster/operator/test_leader_cluster.py)."""

from __future__ import annotations

import datetime as dt

from audio_extract_operator.leader import Timing, claimed, expired

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
