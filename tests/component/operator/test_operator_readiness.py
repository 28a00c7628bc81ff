"""/readyz over real HTTP: ready only once kopf has started and while its liveness endpoint answers."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from audio_extract_localcluster.localnet import free_port
from audio_extract_operator.progress import Progress
from audio_extract_operator.readiness import Readiness
from audio_extract_operator.registry import Registry
from support.operator_settings import operator_settings


async def liveness_server(status: int = 200, delay: float = 0.0) -> TestServer:
    """A stand-in for kopf's liveness endpoint."""

    async def healthz(_request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        return web.json_response({}, status=status)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    server = TestServer(app)
    await server.start_server()
    return server


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}/healthz"


async def test_not_ready_until_kopf_has_started() -> None:
    live = await liveness_server()
    try:
        readiness = Readiness(str(live.make_url("/healthz")))
        assert await readiness.problem() == "kopf has not finished starting"
        readiness.started.set()
        assert await readiness.problem() is None
    finally:
        await live.close()


async def test_not_ready_when_kopfs_liveness_endpoint_fails_or_is_gone() -> None:
    failing = await liveness_server(status=500)
    slow = await liveness_server(delay=5)
    try:
        for url, reason in (
            (str(failing.make_url("/healthz")), "answered 500"),
            (str(slow.make_url("/healthz")), "did not answer"),
            (closed_port_url(), "did not answer"),
        ):
            readiness = Readiness(url, timeout=0.5)
            readiness.started.set()
            assert reason in (await readiness.problem() or ""), url
    finally:
        await failing.close()
        await slow.close()


async def test_without_a_liveness_endpoint_started_is_ready() -> None:
    readiness = Readiness(None)
    readiness.started.set()
    assert await readiness.problem() is None


async def test_readyz_is_served_by_the_progress_endpoint() -> None:
    live = await liveness_server()
    readiness = Readiness(str(live.make_url("/healthz")))
    progress = Progress(operator_settings(), Registry(), writer=None, readiness=readiness)  # type: ignore[arg-type]
    client = TestClient(TestServer(progress.app()))
    await client.start_server()
    try:
        reply = await client.get("/readyz")
        assert reply.status == 503
        assert await reply.json() == {"ready": False, "reason": "kopf has not finished starting"}
        readiness.started.set()
        reply = await client.get("/readyz")
        assert reply.status == 200 and await reply.json() == {"ready": True}
        await live.close()  # kopf stopped: its liveness endpoint is gone
        assert (await client.get("/readyz")).status == 503
    finally:
        await client.close()
        await live.close()


def test_the_operator_hands_kopf_the_flag_readyz_waits_for(monkeypatch: pytest.MonkeyPatch) -> None:
    import kopf

    from audio_extract_operator import __main__, handlers

    passed: dict[str, object] = {}

    async def operator(**kwargs: object) -> None:
        passed.update(kwargs)

    monkeypatch.setattr(kopf, "operator", operator)
    monkeypatch.setattr(logging, "basicConfig", lambda **_: None)
    kopf_logger = logging.getLogger("kopf")
    monkeypatch.setattr(kopf_logger, "level", kopf_logger.level)
    __main__.main()
    assert passed["ready_flag"] is handlers.READINESS.started
