"""``GET /readyz`` for the kubelet's readiness probe: kopf itself serves only liveness.

Ready means working. kopf must have finished its startup activity: our clients, the progress
endpoint and the loops are up, and only after that does kopf start its watches. And kopf's own
liveness endpoint must still answer: kopf serves it from one of its root tasks, which all stop
together when kopf stops working (a watch that fails for good ends them), so each answer is a fresh
sign of life of kopf rather than of this process. The route is served by the progress endpoint,
so a progress endpoint that stops serving reads as not ready too.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from .settings import Settings

LIVENESS_TIMEOUT = 2.0
"""Seconds to wait for kopf's liveness endpoint; below the chart's probe timeout (5 s)."""


def liveness_url(settings: Settings) -> str | None:
    """kopf's liveness endpoint as this process reaches it (kopf binds every address)."""
    return f"http://127.0.0.1:{settings.kopf.liveness_port}/healthz" if settings.kopf.liveness_port else None


class Readiness:
    def __init__(self, liveness: str | None, timeout: float = LIVENESS_TIMEOUT) -> None:
        self.started = asyncio.Event()
        """Passed to kopf as its ``ready_flag``: kopf sets it once its startup activity is done."""
        self.liveness = liveness
        self.timeout = timeout

    async def problem(self) -> str | None:
        """Why the operator is not ready, or None when it is."""
        if not self.started.is_set():
            return "kopf has not finished starting"
        if self.liveness is None:  # no liveness endpoint configured (local runs, tests)
            return None
        try:
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            async with aiohttp.ClientSession(timeout=timeout) as session, session.get(self.liveness) as reply:
                if reply.status != 200:
                    return f"kopf's liveness endpoint answered {reply.status}"
        except (aiohttp.ClientError, TimeoutError) as e:
            return f"kopf's liveness endpoint did not answer: {e!r}"
        return None

    async def handle(self, _request: web.Request) -> web.Response:
        problem = await self.problem()
        if problem is not None:
            return web.json_response({"ready": False, "reason": problem}, status=503)
        return web.json_response({"ready": True})
