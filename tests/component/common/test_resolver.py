"""BoundedResolver: one lookup per name at a time, a time limit per lookup, a thread ceiling.

The system resolver is replaced by a function that blocks until the test releases it, which is
what a resolver that does not answer looks like from the thread (the component tests in
tests/component/*/test_*_resolution.py use a real slow DNS server).
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import time
from collections import Counter

import pytest

from audio_extract_common import address_policy
from audio_extract_common.resolver import BoundedResolver, LookupTimeout

ALLOW = address_policy.AllowList()
ANSWER = [ipaddress.ip_address("93.184.215.14")]


class Blocking:
    """Stands in for address_policy.resolve_checked: blocks each call until ``release``."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.gate = threading.Event()
        self.blocked_error: Exception | None = None

    def __call__(self, host: str, port: int, allow: address_policy.AllowList | None = None) -> list:
        self.calls[host] += 1
        self.gate.wait(10)
        if self.blocked_error is not None:
            raise self.blocked_error
        return ANSWER

    def release(self) -> None:
        self.gate.set()


@pytest.fixture
def system(monkeypatch) -> Blocking:
    fake = Blocking()
    monkeypatch.setattr(address_policy, "resolve_checked", fake)
    yield fake
    fake.release()


async def test_callers_of_one_name_share_one_lookup(system):
    r = BoundedResolver(threads=4, timeout=2.0)
    calls = [asyncio.create_task(r.resolve_checked("a.example", 443, ALLOW)) for _ in range(10)]
    await asyncio.sleep(0.05)
    assert r.busy == 1
    system.release()
    assert await asyncio.gather(*calls) == [ANSWER] * 10
    assert system.calls == {"a.example": 1}
    assert r.busy == 0


async def test_a_lookup_gets_its_timeout_once_and_late_callers_fail_at_once(system):
    r = BoundedResolver(threads=4, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(LookupTimeout, match="did not resolve in time"):
        await r.resolve_checked("slow.example", 80, ALLOW)
    assert 0.25 < time.monotonic() - started < 0.6
    assert r.busy == 1  # the thread is still blocked in the resolver
    started = time.monotonic()
    with pytest.raises(LookupTimeout):  # the same name while that thread lingers: no new wait
        await r.resolve_checked("slow.example", 80, ALLOW)
    assert time.monotonic() - started < 0.05
    assert system.calls == {"slow.example": 1}
    system.release()
    await asyncio.sleep(0.05)
    assert r.busy == 0
    assert await r.resolve_checked("slow.example", 80, ALLOW) == ANSWER  # a fresh lookup
    assert system.calls == {"slow.example": 2}


async def test_a_caller_may_wait_less_than_the_lookup_timeout(system):
    r = BoundedResolver(threads=4, timeout=5.0)
    started = time.monotonic()
    with pytest.raises(LookupTimeout):
        await r.resolve_checked("slow.example", 80, ALLOW, timeout=0.1)
    assert time.monotonic() - started < 0.3


async def test_threads_are_capped_and_a_lookup_nobody_waits_for_never_starts(system):
    r = BoundedResolver(threads=2, timeout=0.3)
    outcomes = await asyncio.gather(
        *(r.resolve_checked(f"h{i}.example", 80, ALLOW) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(o, LookupTimeout) for o in outcomes)
    assert "too many host lookups in progress" in str(outcomes[2])
    assert r.busy == 2
    system.release()
    await asyncio.sleep(0.1)
    assert system.calls == {"h0.example": 1, "h1.example": 1}  # h2 was dropped, not run late
    assert r.busy == 0


async def test_refusals_reach_every_caller(system):
    r = BoundedResolver(threads=2, timeout=2.0)
    system.blocked_error = address_policy.BlockedAddress("host 'x' is not a public address")
    calls = [asyncio.create_task(r.resolve_checked("x.example", 80, ALLOW)) for _ in range(3)]
    system.release()
    for outcome in await asyncio.gather(*calls, return_exceptions=True):
        assert isinstance(outcome, address_policy.BlockedAddress)


async def test_literal_addresses_need_no_thread(monkeypatch: pytest.MonkeyPatch):
    started: list[str] = []  # counted here: other tests' threads may end meanwhile

    class Counted(threading.Thread):
        def start(self) -> None:
            started.append(self.name)
            super().start()

    monkeypatch.setattr(threading, "Thread", Counted)
    r = BoundedResolver(threads=1, timeout=0.5)
    assert await r.resolve_url_checked("http://93.184.215.14/v.mp4", ALLOW) == ANSWER
    assert await r.resolve_url_checked("http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/", ALLOW)
    with pytest.raises(address_policy.BlockedAddress):
        await r.resolve_url_checked("http://127.0.0.1/", ALLOW)
    assert r.busy == 0 and started == []
    await r.resolve_url_checked(
        "http://localhost/", address_policy.AllowList.parse("127.0.0.0/8")
    )  # a name starts one
    assert started == ["lookup"]


async def test_resolve_url_checked_applies_the_url_rules_before_any_lookup(system):
    r = BoundedResolver(threads=1, timeout=0.5)
    for url in ("ftp://a.example/", "http://user:pw@a.example/"):
        with pytest.raises(address_policy.UnsupportedURL):
            await r.resolve_url_checked(url, ALLOW)
    assert system.calls == Counter()
