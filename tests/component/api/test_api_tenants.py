"""Tenants (docs/contract.md §7): a key sees only its tenant's jobs and batches, another tenant's answer
exactly like missing ones on every route, `admin` sees and cancels everything, a kubectl batch
belongs to the tenant in its label, and Idempotency-Keys are scoped per tenant with batch ids no
one can compute from the key. The Kubernetes side is an in-memory stand-in (api_fakekube)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from api_fakekube import FakeKube
from pydantic import SecretStr

from audio_extract_api.logs import TenantFilter
from audio_extract_common import ids

KEY, SIBLING_KEY = "axk_component-test-key", "axk_main-tenant-ci-key"  # tenant main (conftest)
OTHER_KEY, ADMIN_KEY = "axk_second-key", "axk_admin-key"  # tenant other; tenant ops, scope admin
TENANT_LABEL = "audioextract.io/tenant"
JOB = {"source": {"type": "url", "url": "http://127.0.0.1/a.mp4"}, "output": {"format": "mp3"}}
MISSING_JOB, MISSING_BATCH = "job_0123456789abcd01", "batch_0123456789abcd00"


@pytest.fixture
async def api(make_client) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(allow_cidrs="127.0.0.0/8", idempotency_secret=SecretStr("a-server-secret")) as c:
        c.kube = FakeKube().install(c.app)  # type: ignore[attr-defined]
        yield c


async def submit(api: httpx.AsyncClient, key: str = KEY, jobs: int = 1, **headers: str) -> dict[str, Any]:
    r = await api.post("/v1/batch", json={"jobs": [JOB] * jobs}, headers={"X-API-Key": key, **headers})
    assert r.status_code == 202, r.text
    return r.json()["data"]


def routes(job: str, batch: str) -> list[tuple[str, str]]:
    return [
        ("GET", f"/v1/status/{job}"),
        ("GET", f"/v1/batch/{batch}"),
        ("GET", f"/v1/download/{job}"),
        ("POST", f"/v1/jobs/{job}/cancel"),
        ("POST", f"/v1/batch/{batch}/cancel"),
        ("GET", f"/audio-extract/v1/status/{job}"),
    ]


def spec_of(api: httpx.AsyncClient, batch_id: str) -> dict[str, Any]:
    key = ids.parse_batch_id(batch_id)
    obj = api.kube.objects.get(ids.batch_object_name(key)) or next(  # type: ignore[attr-defined]
        o for o in api.kube.objects.values() if o["metadata"]["labels"][ids.KEY_LABEL] == key
    )  # type: ignore[attr-defined]
    return obj["spec"]


def answer_headers(reply: httpx.Response) -> dict[str, str]:
    """All but the app's time (`Server-Timing`), which differs from one request to the next as
    the time the client measures itself does."""
    return {k: v for k, v in reply.headers.items() if k != "server-timing"}


async def test_another_tenants_job_and_batch_answer_exactly_like_missing_ones(api, expect_error):
    mine = await submit(api)
    job, batch = mine["jobs"][0]["jobId"], mine["batchId"]
    for (method, path), (_, missing) in zip(
        routes(job, batch), routes(MISSING_JOB, MISSING_BATCH), strict=True
    ):
        api.kube.asked.clear()  # type: ignore[attr-defined]
        theirs = await api.request(method, path, headers={"X-API-Key": OTHER_KEY})
        asked_for_theirs = list(api.kube.asked)  # type: ignore[attr-defined]
        api.kube.asked.clear()  # type: ignore[attr-defined]
        nothing = await api.request(method, missing, headers={"X-API-Key": OTHER_KEY})
        expect_error(theirs, 404, "JOB_NOT_FOUND")
        assert (theirs.json(), answer_headers(theirs)) == (nothing.json(), answer_headers(nothing)), path
        # the same lookups, so the time spent on them (Server-Timing's kube) is no tell either
        assert asked_for_theirs == api.kube.asked, path  # type: ignore[attr-defined]
    assert (spec_of(api, batch)["cancel"], spec_of(api, batch)["cancelJobs"]) == (False, [])
    # the owner still sees it
    assert (await api.get(f"/v1/status/{job}")).json()["data"]["status"] == "queued"
    assert (await api.get(f"/v1/batch/{batch}")).status_code == 200


async def test_every_key_of_a_tenant_sees_that_tenants_work(api):
    theirs = await submit(api, key=SIBLING_KEY)
    job, batch = theirs["jobs"][0]["jobId"], theirs["batchId"]
    assert (await api.get(f"/v1/status/{job}")).status_code == 200
    assert (await api.post(f"/v1/jobs/{job}/cancel")).status_code == 202
    assert spec_of(api, batch)["cancelJobs"] == [0]


async def test_admin_sees_and_cancels_every_tenants_work(api):
    admin = {"X-API-Key": ADMIN_KEY}
    for owner in (KEY, OTHER_KEY):
        made = await submit(api, key=owner, jobs=2)
        job, batch = made["jobs"][0]["jobId"], made["batchId"]
        assert (await api.get(f"/v1/status/{job}", headers=admin)).status_code == 200
        assert (await api.get(f"/v1/batch/{batch}", headers=admin)).json()["data"]["totalJobs"] == 2
        assert (await api.get(f"/v1/download/{job}", headers=admin)).status_code == 202  # not completed
        assert (await api.post(f"/v1/jobs/{job}/cancel", headers=admin)).status_code == 202
        assert (await api.post(f"/v1/batch/{batch}/cancel", headers=admin)).status_code == 202
        assert spec_of(api, batch)["cancel"] is True


async def test_the_api_labels_a_batch_with_its_creators_tenant(api):
    for key, tenant in ((KEY, "main"), (SIBLING_KEY, "main"), (OTHER_KEY, "other"), (ADMIN_KEY, "ops")):
        made = await submit(api, key=key)
        name = ids.batch_object_name(ids.parse_batch_id(made["batchId"]))
        assert api.kube.objects[name]["metadata"]["labels"][TENANT_LABEL] == tenant


async def test_a_kubectl_batch_belongs_to_the_tenant_in_its_label(api, expect_error):
    labelled = api.kube.add("from-kubectl", labels={TENANT_LABEL: "other"})
    unlabelled = api.kube.add("no-tenant")
    seen: dict[tuple[str, str], int] = {}
    for name, obj in (("labelled", labelled), ("unlabelled", unlabelled)):
        job = ids.job_id(obj["metadata"]["labels"][ids.KEY_LABEL], 0)
        for who, key in (("main", KEY), ("other", OTHER_KEY), ("admin", ADMIN_KEY)):
            seen[name, who] = (await api.get(f"/v1/status/{job}", headers={"X-API-Key": key})).status_code
    assert seen == {
        ("labelled", "main"): 404,
        ("labelled", "other"): 200,
        ("labelled", "admin"): 200,
        ("unlabelled", "main"): 404,
        ("unlabelled", "other"): 404,
        ("unlabelled", "admin"): 200,
    }


async def test_idempotency_keys_are_scoped_per_tenant(api, expect_error):
    first = await submit(api, key=KEY, **{"Idempotency-Key": "order-1"})
    again = await api.post(
        "/v1/batch", json={"jobs": [JOB]}, headers={"X-API-Key": SIBLING_KEY, "Idempotency-Key": "order-1"}
    )
    assert again.status_code == 202 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["data"]["batchId"] == first["batchId"]  # same tenant, another key
    theirs = await submit(api, key=OTHER_KEY, **{"Idempotency-Key": "order-1"})
    assert theirs["batchId"] != first["batchId"]  # another tenant: its own batch
    assert len(api.kube.objects) == 2
    r = await api.post(
        "/v1/batch", json={"jobs": [JOB, JOB]}, headers={"X-API-Key": OTHER_KEY, "Idempotency-Key": "order-1"}
    )
    expect_error(r, 409, "IDEMPOTENCY_CONFLICT")


async def test_an_idempotent_batch_id_cannot_be_computed_from_the_key(make_client):
    """The id depends on a server secret: the same tenant and key give another id under another
    secret, and none of the ids anyone could compute from the tenant and the key."""
    found = {}
    for secret in ("secret-one", "secret-two", "secret-one"):
        async with make_client(allow_cidrs="127.0.0.0/8", idempotency_secret=SecretStr(secret)) as c:
            FakeKube().install(c.app)
            r = await c.post("/v1/batch", json={"jobs": [JOB]}, headers={"Idempotency-Key": "order-1"})
            assert r.status_code == 202, r.text
            found.setdefault(secret, set()).add(r.json()["data"]["batchId"])
    assert len(found["secret-one"]) == 1  # stable across processes sharing the secret
    assert found["secret-one"] != found["secret-two"]
    guesses = {
        ids.batch_id(hashlib.sha256(f"{who}\0order-1".encode()).hexdigest()[: ids.KEY_HEX])
        for who in ("main", "main-ci")
    }
    assert not guesses & (found["secret-one"] | found["secret-two"])


async def test_uploads_of_another_tenant_are_unknown_sources(api, expect_error):
    file_id = (await api.post("/v1/uploads", content=b"video bytes")).json()["data"]["fileId"]
    body = {"jobs": [{"source": {"type": "upload", "file": file_id}, "output": {"format": "mp3"}}]}
    err = expect_error(
        await api.post("/v1/batch", json=body, headers={"X-API-Key": OTHER_KEY}), 400, "INVALID_SOURCE"
    )
    assert err["details"][0]["field"] == "jobs[0].source.file"
    for key in (KEY, SIBLING_KEY, ADMIN_KEY):
        r = await api.post("/v1/batch", json=body, headers={"X-API-Key": key})
        assert r.status_code == 202, r.text


async def test_metrics_carry_the_tenant(api):
    await submit(api, key=KEY, jobs=2)
    await submit(api, key=OTHER_KEY)
    await api.post("/v1/batch", json={"jobs": [JOB] * 11}, headers={"X-API-Key": OTHER_KEY})
    text = (await api.get("/metrics")).text
    assert 'audio_extract_api_jobs_accepted_total{tenant="main"} 2.0' in text
    assert 'audio_extract_api_jobs_accepted_total{tenant="other"} 1.0' in text
    assert 'audio_extract_api_jobs_refused_total{code="TOO_MANY_JOBS",tenant="other"} 1.0' in text


@contextlib.contextmanager
def api_log_records() -> Iterator[list[logging.LogRecord]]:
    """The API's log records while in the block, through the filter that names the tenant."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.addFilter(TenantFilter())
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("audio_extract_api")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_log_lines_carry_the_tenant(api):
    with api_log_records() as records:
        made = await submit(api, key=OTHER_KEY)
    (created,) = [r for r in records if made["batchId"] in r.getMessage()]
    assert created.tenant == "other"  # type: ignore[attr-defined]
    assert "tenant other" in created.getMessage()


async def test_the_queue_watch_started_by_a_request_logs_as_no_tenant(api):
    """The first submission starts the queue's watch; its lines are the process's, not that
    submitter's: no tenant, no batch."""
    broke = asyncio.Event()

    async def watch_breaking_once(resource_version: str, timeout_seconds: int = 300):
        if not broke.is_set():
            broke.set()
            raise RuntimeError("the watch broke")
        await asyncio.Event().wait()
        yield {}

    api.kube.watch = watch_breaking_once  # type: ignore[attr-defined]
    with api_log_records() as records:
        await submit(api, key=OTHER_KEY)
        await asyncio.wait_for(broke.wait(), 5)
        for _ in range(100):
            interrupted = [r for r in records if "queue watch interrupted" in r.getMessage()]
            if interrupted:
                break
            await asyncio.sleep(0.01)
    (line,) = interrupted
    assert (line.tenant, line.batch_id, line.job_id) == ("-", None, None)  # type: ignore[attr-defined]
