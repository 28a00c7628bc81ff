"""Every answer says how long the app took to start it (`Server-Timing: app;dur=<ms>`, docs/api.md
"Observability"), so a client can tell the app's share of a latency from the rest."""

from __future__ import annotations

import asyncio
import re
import time

APP_DURATION = re.compile(r"^app;dur=(\d+\.\d)$")


def app_ms(reply) -> float:
    match = APP_DURATION.match(reply.headers["server-timing"])
    assert match, reply.headers["server-timing"]
    return float(match.group(1))


async def test_the_app_time_covers_the_handler_and_no_more_than_the_client_saw(client):
    async def slow() -> dict:
        await asyncio.sleep(0.2)
        return {}

    client.app.router.add_api_route("/v1/slow", slow, methods=["GET"])
    started = time.perf_counter()
    reply = await client.get("/v1/slow")
    seen_ms = (time.perf_counter() - started) * 1000
    assert reply.status_code == 200
    assert 200 <= app_ms(reply) <= seen_ms


async def test_answers_the_edge_gives_itself_carry_it(client, expect_error):
    # refused on its Content-Length, before any route runs
    reply = await client.post("/v1/batch", content=b"{}", headers={"Content-Length": str(1 << 30)})
    expect_error(reply, 413, "PAYLOAD_TOO_LARGE")
    assert app_ms(reply) >= 0


async def test_a_quick_answer_is_timed_as_quick(client):
    reply = await client.get("/healthz")
    assert reply.status_code == 200
    assert app_ms(reply) < 200
