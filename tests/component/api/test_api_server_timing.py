"""Every answer says how long the app took to start it and how much of that it waited on the
Kubernetes API (`Server-Timing: app;dur=<ms>, kube;dur=<ms>`, docs/api.md "Observability"), so a
client can tell the app's share of a latency from the rest, and the API server's from the app's."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from audio_extract_common import ids
from audio_extract_common.batch_resource import GROUP, PLURAL, VERSION
from support.kubeconfigs import kubeconfig_for
from support.loopback_servers import Server, json_route

SERVER_TIMING = re.compile(r"^app;dur=(\d+\.\d), kube;dur=(\d+\.\d)$")
KUBE_DELAY = 0.15


def timings(reply) -> tuple[float, float]:
    """(app, kube) in ms."""
    match = SERVER_TIMING.match(reply.headers["server-timing"])
    assert match, reply.headers["server-timing"]
    return float(match.group(1)), float(match.group(2))


async def test_the_app_time_covers_the_handler_and_no_more_than_the_client_saw(client):
    async def slow_handler() -> dict:
        await asyncio.sleep(0.2)
        return {}

    client.app.router.add_api_route("/v1/slow", slow_handler, methods=["GET"])
    started = time.perf_counter()
    reply = await client.get("/v1/slow")
    seen_ms = (time.perf_counter() - started) * 1000
    assert reply.status_code == 200
    app, kube = timings(reply)
    assert 200 <= app <= seen_ms
    assert kube == 0.0  # it asked Kubernetes nothing


async def test_the_time_waiting_on_the_kubernetes_api_is_counted(make_client, tmp_path: Path, expect_error):
    # A stand-in API server that takes KUBE_DELAY for each of the two lookups of a missing job:
    # its batch by name (404), then a batch applied by hand carrying its key (an empty list).
    key = "0123456789abcd"
    job = ids.job_id(key, 0)
    batches = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"
    missing = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}
    api_server = Server(
        routes={
            f"{batches}/{ids.batch_object_name(key)}": json_route(missing, 404, KUBE_DELAY),
            batches: json_route({"items": [], "metadata": {"resourceVersion": "1"}}, delay=KUBE_DELAY),
        }
    ).start()
    kubeconfig = tmp_path / "slow-kubeconfig"
    kubeconfig.write_text(kubeconfig_for(api_server.url("")))
    try:
        async with make_client(kubeconfig=kubeconfig) as client:
            reply = await client.get(f"/v1/status/{job}")
    finally:
        api_server.stop()
    expect_error(reply, 404, "JOB_NOT_FOUND")
    assert [path.split("?")[0] for _, path, _, _ in api_server.hits] == [
        f"{batches}/{ids.batch_object_name(key)}",
        batches,
    ]
    app, kube = timings(reply)
    assert 2 * KUBE_DELAY * 1000 <= kube <= app


async def test_answers_the_edge_gives_itself_carry_it(client, expect_error):
    # refused on its Content-Length, before any route runs
    reply = await client.post("/v1/batch", content=b"{}", headers={"Content-Length": str(1 << 30)})
    expect_error(reply, 413, "PAYLOAD_TOO_LARGE")
    assert timings(reply)[1] == 0.0


async def test_a_quick_answer_is_timed_as_quick(client):
    reply = await client.get("/healthz")
    assert reply.status_code == 200
    assert timings(reply)[0] < 200
