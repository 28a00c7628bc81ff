"""The API's JSON log lines (``log_format=json``): one object per line, naming the tenant, the batch
and the job a request is about once they are known (a created batch; a checked job or batch id)."""

from __future__ import annotations

import contextvars
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from api_fakekube import FakeKube
from pydantic import SecretStr
from test_api_tenants import OTHER_KEY, submit

from audio_extract_api import deps, logs
from audio_extract_api.auth import Principal
from audio_extract_common.jsonlog import JsonFormatter


@pytest.fixture
async def api(make_client) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(allow_cidrs="127.0.0.0/8", idempotency_secret=SecretStr("a-server-secret")) as c:
        c.kube = FakeKube().install(c.app)  # type: ignore[attr-defined]
        yield c


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The API's loggers through the JSON format and the request filter, as ``log_config`` sets them."""
    config = logs.log_config(log_format="json")
    factory = config["formatters"]["default"]["()"]
    assert factory == "audio_extract_common.jsonlog.JsonFormatter"
    assert config["formatters"]["access"]["()"] == factory  # uvicorn's access lines too
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(logs.TenantFilter())
    logger = logging.getLogger("audio_extract_api")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def parsed(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_a_created_batch_is_named_on_its_lines(api, json_lines) -> None:
    made = await submit(api, key=OTHER_KEY)
    (line,) = [line for line in parsed(json_lines) if "created" in line["message"]]
    assert line["tenant"] == "other" and line["batchId"] == made["batchId"]
    assert "jobId" not in line  # about the batch, not one job
    assert line["level"] == "INFO" and line["logger"] == "audio_extract_api.submit"
    assert line["time"].endswith("Z")


async def test_a_checked_job_id_names_the_job_and_its_batch(api, json_lines) -> None:
    made = await submit(api, key=OTHER_KEY)
    job_id = made["jobs"][0]["jobId"]

    async def request() -> None:  # a request's own context, as each request has
        logs.tenant.set("other")
        who = Principal(key_id="k", tenant="other", scopes=frozenset({"read"}))
        await deps.find_job(api.kube, job_id, who)  # type: ignore[attr-defined]
        logging.getLogger("audio_extract_api.routes").warning("something about this job")

    import asyncio

    await asyncio.create_task(request())
    (line,) = [line for line in parsed(json_lines) if line["message"] == "something about this job"]
    assert (line["tenant"], line["jobId"], line["batchId"]) == ("other", job_id, made["batchId"])
    # a line in a context no request has touched (the test client runs requests in this task's)
    contextvars.Context().run(logging.getLogger("audio_extract_api.routes").warning, "outside any request")
    last = parsed(json_lines)[-1]
    assert "jobId" not in last and "batchId" not in last and "tenant" not in last
