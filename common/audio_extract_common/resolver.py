"""Guarded name lookups bounded in time and in threads, for processes that must stay responsive.

The address guard resolves with the system resolver (``getaddrinfo``, the same answers the
worker connects to), which blocks its thread and cannot be interrupted: a resolver that does not
answer holds the thread for glibc's whole retry budget (2 x 5 s by default, more with search
domains). Run in the shared worker-thread pool, a few such lookups took every thread, and
everything else that needed one (FastAPI's sync dependencies: authentication, ``/readyz``) waited
~10 s behind them. :class:`BoundedResolver` keeps lookups apart:

- its own threads (daemon threads: a lookup nobody waits for any more must not hold up the exit),
  at most ``threads`` of them alive at once; a slot is freed when the thread really ends, not when
  its caller gives up, so a slow resolver can never make the process start more threads;
- one lookup per ``(host, port, allowlist)`` at a time: callers of the same name share it, also
  after an earlier caller gave up on it, so one slow name occupies one thread however often it
  is asked for;
- a lookup gets ``timeout`` seconds from its start, waiting for a free slot included, shared by
  all its callers (a caller may ask for less); past them its callers get :class:`LookupTimeout`,
  and so does at once whoever asks for the name while the late lookup's thread still runs. A
  lookup still waiting for a slot when its last caller gives up is dropped.

Why not an asynchronous resolver (aiodns/c-ares): its answers can differ from the system
resolver's (no nsswitch, its own /etc/hosts and search-domain handling), and the guard's point is
to check the addresses the connection will use; it would also need a second copy of the guard's
per-answer checks. Threads are the cost of asking the system resolver.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import address_policy as policy
from . import httpx_guard

T = TypeVar("T")


_Key = tuple[str, int, policy.AllowList]
"""(ASCII host, port, allowlist): lookups with the same key have the same outcome."""


class LookupTimeout(policy.ResolveError):
    """The name was not resolved in time (a slow resolver, or every lookup slot busy)."""


@dataclass
class _Flight:
    task: asyncio.Task[list[policy.IPAddress]]
    ends: float
    """Loop time past which nobody waits for it any more."""
    waiters: int = 0
    started: bool = False
    """Its thread runs (it holds a slot until the thread ends, whoever still waits)."""


@dataclass
class BoundedResolver:
    threads: int = 16
    """Lookups (threads blocked in ``getaddrinfo``) alive at once in this process."""
    timeout: float = 5.0
    """Longest a caller waits for one name, a free slot included."""
    _slots: asyncio.Semaphore | None = field(default=None, init=False, repr=False)
    _flights: dict[_Key, _Flight] = field(default_factory=dict, init=False, repr=False)
    busy: int = field(default=0, init=False)
    """Threads alive now (metrics, tests)."""

    async def resolve_checked(
        self, host: str, port: int, allow: policy.AllowList, timeout: float | None = None
    ) -> list[policy.IPAddress]:
        """:func:`policy.resolve_checked` within ``min(timeout, self.timeout)`` seconds."""
        if _is_literal(host):  # parsed, never looked up: no thread needed
            return policy.resolve_checked(host, port, allow)
        return await self._share((host, port, allow), policy.resolve_checked, (host, port, allow), timeout)

    async def resolve_url_checked(
        self, url: str, allow: policy.AllowList, timeout: float | None = None
    ) -> list[policy.IPAddress]:
        """:func:`httpx_guard.resolve_url_checked` within ``min(timeout, self.timeout)`` seconds."""
        parsed = httpx_guard.parse_url(url)
        host = parsed.raw_host.decode("ascii")  # the name the guard looks up and clients send
        if _is_literal(host):
            return httpx_guard.resolve_url_checked(url, allow)
        key = (host, httpx_guard.default_port(parsed), allow)
        return await self._share(key, httpx_guard.resolve_url_checked, (url, allow), timeout)

    async def lookup(self, host: str, port: int, allow: policy.AllowList) -> list[policy.IPAddress]:
        """For :func:`aiohttp_guard.guarded_session`'s ``lookup``."""
        return await self.resolve_checked(host, port, allow)

    async def _share(
        self,
        key: _Key,
        fn: Callable[..., list[policy.IPAddress]],
        args: tuple[object, ...],
        timeout: float | None,
    ) -> list[policy.IPAddress]:
        """Join the lookup of ``key`` in progress, or start one running ``fn(*args)``."""
        now = asyncio.get_running_loop().time()
        flight = self._flights.get(key)
        if flight is None:
            flight = _Flight(
                asyncio.create_task(self._fly(key, fn, args), name=f"lookup {key[0]}"),
                ends=now + self.timeout,
            )
            flight.task.add_done_callback(_retrieve)
            self._flights[key] = flight
        limit = flight.ends - now if timeout is None else min(timeout, flight.ends - now)
        flight.waiters += 1
        try:
            return await asyncio.wait_for(asyncio.shield(flight.task), max(limit, 0.0))
        except TimeoutError:
            if flight.started:
                raise LookupTimeout(f"host {key[0]!r} did not resolve in time") from None
            raise LookupTimeout(
                f"too many host lookups in progress; host {key[0]!r} was not resolved in time"
            ) from None
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.started:
                flight.task.cancel()
                if self._flights.get(key) is flight:  # a later caller starts afresh
                    del self._flights[key]

    async def _fly(
        self, key: _Key, fn: Callable[..., list[policy.IPAddress]], args: tuple[object, ...]
    ) -> list[policy.IPAddress]:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.threads)
        flight = self._flights[key]
        try:
            await self._slots.acquire()
            flight.started = True
            self.busy += 1
            try:
                # Never cancelled from here on (see _share's finally): the slot is the thread's
                # until it ends.
                return await _in_thread(fn, *args)
            finally:
                self.busy -= 1
                self._slots.release()
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]


def _in_thread(fn: Callable[..., T], *args: object) -> asyncio.Future[T]:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(set_outcome: Callable[[Any], None], value: object) -> None:
        def settle() -> None:
            if not future.done():
                set_outcome(value)

        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle)

    def run() -> None:
        try:
            result = fn(*args)
        except Exception as e:
            deliver(future.set_exception, e)
        else:
            deliver(future.set_result, result)

    threading.Thread(target=run, name="lookup", daemon=True).start()
    return future


def _retrieve(task: asyncio.Task[object]) -> None:
    """A lookup every caller gave up on ends unobserved: consume its outcome (no log noise)."""
    if not task.cancelled():
        task.exception()


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host[1:-1] if host.startswith("[") else host)
    except ValueError:
        return False
    return True
