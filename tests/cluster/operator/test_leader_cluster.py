"""Leader election against the real API server: one holder at a time, a standby takes over once
the holder stops renewing, a holder that finds the Lease taken stops, and a clean stop hands the
Lease over at once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from audio_extract_operator.kube import Kube
from audio_extract_operator.leader import LeaderElection, Timing, lease_path

pytestmark = pytest.mark.cluster

FAST = Timing(lease_duration=3, renew_deadline=2, retry_period=0.2)


async def test_one_leader_a_standby_takes_over_a_deposed_leader_stops(cluster: Any, namespace: str) -> None:
    kube = await Kube.connect(str(cluster.kubeconfig))
    lost: list[str] = []
    a, b, c = (
        LeaderElection(kube, namespace, "operator", name, FAST, on_lost=lambda n=name: lost.append(n))
        for name in "abc"
    )
    try:
        await asyncio.wait_for(a.acquire(), 5)
        holding = asyncio.create_task(a.hold())
        standby = asyncio.create_task(b.acquire())
        await asyncio.sleep(2 * FAST.lease_duration)  # a renews: b keeps standing by
        assert not standby.done()
        assert not lost

        holding.cancel()  # a dies without a word
        died = time.monotonic()
        await asyncio.wait_for(standby, 2 * FAST.lease_duration)
        takeover = time.monotonic() - died
        assert FAST.lease_duration - 1 < takeover <= FAST.lease_duration + 2 * FAST.retry_period + 1
        lease = await kube.call("GET", lease_path(namespace, "operator"))
        assert lease["spec"]["holderIdentity"] == "b"
        assert lease["spec"]["leaseTransitions"] == 1

        await a.hold()  # a comes back believing it leads: its renewal deadline is long past, it stops
        assert lost == ["a"]
        # one that has just renewed as far as it knows asks, finds b's Lease and stops at once
        again = LeaderElection(kube, namespace, "operator", "a", FAST, on_lost=lambda: lost.append("a again"))
        started = time.monotonic()
        await asyncio.wait_for(again.hold(), FAST.renew_deadline)
        assert lost == ["a", "a again"] and time.monotonic() - started < FAST.renew_deadline

        b_holding = asyncio.create_task(b.hold())
        b_holding.cancel()
        await b.release()
        started = time.monotonic()
        await asyncio.wait_for(c.acquire(), 5)
        assert time.monotonic() - started < 1  # released: no need to wait for the lease to lapse
    finally:
        await kube.close()
