"""The largest valid batch (``largest_batch``: about 1 MiB as one watch line) passes whole through
both watch readers, from a real aiohttp server that streams it chunked as the API server does:
kopf's (the operator's handlers see every batch through it) and the API's own ``Kube.watch``.

aiohttp's ``StreamReader.readline`` refuses a line over twice the session's ``read_bufsize``:
128 KiB with the default of aiohttp < 3.14, 512 KiB from 3.14 on. No default fits this batch;
what makes it pass is kopf reading the body in chunks itself (``iter_jsonlines``, no line limit)
and the Kubernetes client of the API setting ``read_bufsize`` to 2 MiB (a 4 MiB line limit)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from kopf._cogs.clients.api import iter_jsonlines

from audio_extract_api.kube import Kube
from audio_extract_api.settings import Settings
from support.largest_batch import largest_batch, watch_line

NS = "n" * 63
CHUNK = 8 * 1024
"""The API server flushes each event as it encodes it; a client sees many small chunks."""


@pytest.fixture
async def watch_server():
    line = watch_line(largest_batch(namespace=NS))

    async def watch(request: web.Request) -> web.StreamResponse:
        assert request.query.get("watch") in ("true", "True", "1")
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for start in range(0, len(line), CHUNK):
            await resp.write(line[start : start + CHUNK])
            await asyncio.sleep(0)
        await resp.write(b'{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"1"}}}\n')
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/apis/audioextract.io/v1/namespaces/{ns}/extractionbatches", watch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", line
    await runner.cleanup()


def test_the_largest_valid_batch_is_a_line_no_default_readline_limit_fits() -> None:
    size = len(watch_line(largest_batch()))
    assert size > 2 * 2**18, f"{size} bytes: within aiohttp's default line limit, the tests below prove less"


async def test_kopf_reads_the_largest_valid_batch(watch_server) -> None:
    url, line = watch_server
    # the session as kopf makes it (kopf._cogs.clients.auth): aiohttp's defaults, no read_bufsize
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
        session.get(
            f"{url}/apis/audioextract.io/v1/namespaces/{NS}/extractionbatches", params={"watch": "true"}
        ) as resp,
    ):
        events = [json.loads(raw) async for raw in iter_jsonlines(resp.content)]
    assert [e["type"] for e in events] == ["MODIFIED", "BOOKMARK"]
    assert events[0] == json.loads(line)


async def test_the_apis_watch_reads_the_largest_valid_batch(watch_server, tmp_path: Path) -> None:
    url, line = watch_server
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": url}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": NS}}],
            }
        )
    )
    kube = Kube(Settings(kubeconfig=kubeconfig, namespace=NS))
    try:
        events = [e async for e in kube.watch("1", timeout_seconds=30)]
    finally:
        await kube.close()
    assert [e["type"] for e in events] == ["MODIFIED", "BOOKMARK"]
    assert events[0] == json.loads(line)
