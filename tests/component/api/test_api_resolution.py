"""Submission-time name resolution against a real, slow DNS server (``slow_dns``, see
tests/component/conftest.py): bounded per name, per request and per process, and never in the way
of /healthz, /readyz or authentication."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Iterator
from typing import Any

import httpx
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from audio_extract_api.app import create_app

PROBE = "/v1/status/not-an-id"  # authenticated, then 400 without Kubernetes
FAST = 0.5
"""Seconds a probe or an authenticated request may take while lookups hang."""


def batch_of(sources: list[str], hooks: list[str] | None = None) -> dict[str, Any]:
    jobs: list[dict[str, Any]] = []
    for i, host in enumerate(sources):
        job: dict[str, Any] = {
            "source": {"type": "url", "url": f"http://{host}/v.mp4"},
            "output": {"format": "mp3"},
        }
        if hooks:
            job["options"] = {"webhook": f"http://{hooks[i]}/hook"}
        jobs.append(job)
    return {"jobs": jobs}


async def timed(call: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    r = await call
    return r, time.monotonic() - started


def late_fields(error: dict[str, Any]) -> set[str]:
    return {d["field"] for d in error.get("details") or []}


async def test_probes_and_auth_answer_at_once_while_lookups_hang(make_client, slow_dns, expect_error):
    """Two batches of ten jobs whose 40 names never get an answer: the issue's reproduction."""
    async with make_client(resolve_timeout_seconds=1.0, resolve_deadline_seconds=1.5) as c:
        submissions = [
            asyncio.create_task(
                timed(
                    c.post(
                        "/v1/batch",
                        json=batch_of(
                            [f"s{i}.r{r}.never.test" for i in range(10)],
                            [f"w{i}.r{r}.never.test" for i in range(10)],
                        ),
                    )
                )
            )
            for r in range(2)
        ]
        await asyncio.sleep(0.3)  # every lookup has started
        for path in ("/healthz", "/readyz", "/metrics", PROBE):
            r, took = await timed(c.get(path))
            print(f"{path}: {r.status_code} in {took:.3f}s")
            assert took < FAST, f"{path} took {took:.2f}s while lookups hang"
        expect_error((await timed(c.get(PROBE)))[0], 400, "INVALID_JOB_ID")  # authenticated
        for task in submissions:
            r, took = await task
            print(f"submission: {r.status_code} in {took:.3f}s")
            err = expect_error(r, 503, "SERVICE_UNAVAILABLE")
            assert int(r.headers["retry-after"]) >= 1
            assert "in time" in err["message"], err
            assert late_fields(err) == (
                {f"jobs[{i}].source.url" for i in range(10)}
                | {f"jobs[{i}].options.webhook" for i in range(10)}
            )
            assert took < 1.5 + FAST


async def test_the_request_deadline_bounds_many_slow_names(make_client, slow_dns, expect_error):
    """Each name answers in 0.4 s, well inside the per-name timeout, but two at a time ten of them
    need 2 s: past the request's 1 s deadline the answer is 503, naming what was not checked."""
    slow_dns.delay = 0.4
    async with make_client(
        resolve_timeout_seconds=1.0,
        resolve_deadline_seconds=1.0,
        resolve_per_request=2,
        allow_cidrs="127.0.0.1/32",
    ) as c:
        r, took = await timed(c.post("/v1/batch", json=batch_of([f"s{i}.slow.test" for i in range(10)])))
    print(f"submission: {r.status_code} in {took:.3f}s, {slow_dns.peak} names at once")
    err = expect_error(r, 503, "SERVICE_UNAVAILABLE")
    assert "in time" in err["message"], err
    assert 0 < len(late_fields(err)) < 10  # some were checked, the rest named
    assert took < 1.0 + FAST
    assert slow_dns.peak <= 2  # per-request concurrency


async def test_lookups_per_process_are_capped(make_client, slow_dns, expect_error):
    async with make_client(
        resolve_threads=3, resolve_per_request=4, resolve_timeout_seconds=0.5, resolve_deadline_seconds=1.0
    ) as c:
        results = await asyncio.gather(
            *(
                timed(c.post("/v1/batch", json=batch_of([f"s{i}.r{r}.never.test" for i in range(10)])))
                for r in range(3)
            )
        )
        r, took = await timed(c.get("/readyz"))
        assert took < FAST
    print(f"{slow_dns.peak} names looked up at once")
    assert len(slow_dns.names(".never.test")) <= 3  # the three threads are still blocked
    for r, took in results:
        expect_error(r, 503, "SERVICE_UNAVAILABLE")
        assert took < 1.0 + FAST


async def test_names_that_answer_in_time_pass_and_definite_refusals_win(make_client, slow_dns, expect_error):
    slow_dns.delay = 0.2
    async with make_client(
        resolve_timeout_seconds=1.0, resolve_deadline_seconds=1.5, allow_cidrs="127.0.0.1/32"
    ) as c:
        # checked and allowed: the request reaches the (unreachable) Kubernetes API
        r = await c.post("/v1/batch", json=batch_of(["a.fast.test", "b.slow.test"], ["c.slow.test"] * 2))
        err = expect_error(r, 503, "SERVICE_UNAVAILABLE")
        assert "Kubernetes" in err["message"] and "details" not in err
        # a name that does not exist is the client's error, even next to one that never answers
        r = await c.post("/v1/batch", json=batch_of(["nothing.nx.test", "x.never.test"]))
        err = expect_error(r, 400, "INVALID_SOURCE")
        assert late_fields(err) == {"jobs[0].source.url"}
    async with make_client(resolve_timeout_seconds=1.0) as c:  # no allowlist: loopback is refused
        r = await c.post("/v1/extract", json=batch_of(["a.fast.test"])["jobs"][0])
        expect_error(r, 400, "INVALID_SOURCE")


def test_no_route_or_dependency_runs_in_the_shared_thread_pool(settings):
    """FastAPI runs a plain ``def`` route or dependency in anyio's shared worker threads: that is
    how /readyz and authentication came to wait behind blocking lookups. None may be sync."""

    def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
        for route in routes:
            if isinstance(route, APIRoute):
                yield route
            else:  # an included router (FastAPI keeps it whole since 0.16x), a mount
                yield from api_routes(getattr(getattr(route, "original_router", route), "routes", []))

    def walk(d: Dependant) -> Iterator[Dependant]:
        yield d
        for sub in d.dependencies:
            yield from walk(sub)

    def is_async(call: Any) -> bool:
        return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(type(call).__call__)

    routes = list(api_routes(create_app(settings).routes))
    assert len({r.path for r in routes}) > 10
    sync = {
        f"{route.path}: {getattr(d.call, '__name__', d.call)}"
        for route in routes
        for d in walk(route.dependant)
        if d.call is not None and not is_async(d.call)
    }
    assert sync == set()
