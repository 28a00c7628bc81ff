"""The API against the real API server (no operator): one object per batch, idempotency,
QUEUE_FULL's bound under concurrency, id resolution, views, cancel, and every download answer.

Where a job's outcome matters, the test writes the batch's status subresource as the operator
would; the operator's own behaviour is covered end to end in test_api_end_to_end.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import pytest
from pydantic import SecretStr

from audio_extract_common import ids, timefmt

pytestmark = pytest.mark.cluster

OTHER_KEY, ADMIN_KEY = "axk_cluster-other-key", "axk_cluster-admin-key"  # tenants other and ops (admin)
SOURCE = {"type": "url", "url": "http://127.0.0.1:9/video.mp4"}  # loopback is allowlisted here


def one_job(fmt: str = "mp3", **output) -> dict:
    return {"source": SOURCE, "output": {"format": fmt, **output}}


async def test_batch_creates_one_resource_with_contract_ids(api, batches):
    r = await api.post("/v1/batch", json={"jobs": [one_job(), one_job("flac", normalize=True)]})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["success"] is True and body["message"] == "Batch jobs queued successfully"
    data = body["data"]
    assert ids.BATCH_ID_RE.match(data["batchId"]) and data["totalJobs"] == 2
    key = ids.parse_batch_id(data["batchId"])
    assert [j["jobId"] for j in data["jobs"]] == [ids.job_id(key, 0), ids.job_id(key, 1)]
    assert all(j["status"] == "queued" for j in data["jobs"])
    assert data["jobs"][1]["statusUrl"] == f"/audio-extract/v1/status/{ids.job_id(key, 1)}"
    [obj] = batches()
    assert obj["metadata"]["name"] == ids.batch_object_name(key)
    assert obj["spec"]["jobs"][1]["output"] == {
        "format": "flac",
        "quality": "medium",
        "normalize": True,
        "preserveMetadata": False,
    }
    assert obj["metadata"]["labels"][ids.KEY_LABEL] == key
    assert obj["metadata"]["labels"][ids.TENANT_LABEL] == "main"
    assert obj["metadata"]["annotations"]["audioextract.io/api-key-id"] == "main"


async def test_status_and_batch_views_of_a_queued_job(api):
    data = (
        await api.post("/v1/batch", json={"jobs": [one_job()], "webhook": "http://127.0.0.1:9/hook"})
    ).json()["data"]
    job_id = data["jobs"][0]["jobId"]
    for prefix in ("/v1", "/audio-extract/v1"):
        r = await api.get(f"{prefix}/status/{job_id}")
        assert r.status_code == 200, r.text
        view = r.json()["data"]
        assert view["jobId"] == job_id and view["batchId"] == data["batchId"]
        assert (view["status"], view["progress"], view["currentStep"]) == ("queued", 0, None)
        assert view["outputFile"] is None and view["downloadUrl"] is None and view["error"] is None
        assert view["options"] == {
            "filename": None,
            "webhook": "http://127.0.0.1:9/hook",
            "priority": "normal",
            "sampleRate": None,
            "channels": None,
            "trim": None,
            "audioTrack": None,
        }
        assert view["createdAt"].endswith("Z") and view["expired"] is False
    batch = (await api.get(f"/v1/batch/{data['batchId']}")).json()["data"]
    assert (batch["totalJobs"], batch["queued"], batch["completed"], batch["failed"]) == (1, 1, 0, 0)
    assert batch["jobs"][0]["jobId"] == job_id


async def test_extract_is_a_batch_of_one_with_an_estimate(api, batches):
    r = await api.post("/v1/extract", json=one_job("aac", bitrate="256k"))
    assert r.status_code == 202, r.text
    data = r.json()["data"]
    assert data["status"] == "queued" and data["statusUrl"].endswith(data["jobId"])
    assert data["estimatedTime"] == 20  # nothing queued ahead: the base estimate
    r2 = (await api.post("/v1/extract", json=one_job())).json()["data"]
    assert r2["estimatedTime"] == 20 + 5 * 1  # one job ahead
    assert len(batches()) == 2


async def test_unknown_job_is_404(api, expect_error_cluster):
    expect_error_cluster(await api.get("/v1/status/job_0123456789abcd01"), 404, "JOB_NOT_FOUND")
    expect_error_cluster(await api.get("/v1/batch/batch_0123456789abcd00"), 404, "JOB_NOT_FOUND")
    data = (await api.post("/v1/batch", json={"jobs": [one_job()]})).json()["data"]
    key = ids.parse_batch_id(data["batchId"])
    # index 2 does not exist in a one-job batch
    expect_error_cluster(await api.get(f"/v1/status/{ids.job_id(key, 1)}"), 404, "JOB_NOT_FOUND")


async def test_kubectl_applied_batch_is_found_by_its_label(api, cluster, namespace, expect_error_cluster):
    """Found by its key label, and seen by the tenant its tenant label names (and by admins)."""
    manifest = """
apiVersion: audioextract.io/v1
kind: ExtractionBatch
metadata: {name: hand-made, labels: {audioextract.io/tenant: main}}
spec:
  jobs:
  - source: {type: url, url: "https://example.com/a.mp4"}
    output: {format: opus}
"""
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=manifest)
    uid = cluster.kubectl(
        "-n", namespace, "get", "extractionbatch", "hand-made", "-o", "jsonpath={.metadata.uid}"
    ).stdout
    key = ids.key_from_uid(uid)
    # what the operator does for batches it did not name
    cluster.kubectl("-n", namespace, "label", "extractionbatch", "hand-made", f"{ids.KEY_LABEL}={key}")
    r = await api.get(f"/v1/status/{ids.job_id(key, 0)}")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["batchId"] == ids.batch_id(key)
    theirs = await api.get(f"/v1/status/{ids.job_id(key, 0)}", headers={"X-API-Key": OTHER_KEY})
    expect_error_cluster(theirs, 404, "JOB_NOT_FOUND")
    # without a tenant label, only admin keys see it
    cluster.kubectl("-n", namespace, "label", "extractionbatch", "hand-made", f"{ids.TENANT_LABEL}-")
    expect_error_cluster(await api.get(f"/v1/status/{ids.job_id(key, 0)}"), 404, "JOB_NOT_FOUND")
    admin = await api.get(f"/v1/status/{ids.job_id(key, 0)}", headers={"X-API-Key": ADMIN_KEY})
    assert admin.status_code == 200, admin.text


async def test_another_tenant_gets_404_on_every_route_and_admin_sees_all(api, batches, expect_error_cluster):
    data = (await api.post("/v1/batch", json={"jobs": [one_job()]})).json()["data"]
    job, batch = data["jobs"][0]["jobId"], data["batchId"]
    routes = [
        ("GET", f"/v1/status/{job}"),
        ("GET", f"/v1/batch/{batch}"),
        ("GET", f"/v1/download/{job}"),
        ("POST", f"/v1/jobs/{job}/cancel"),
        ("POST", f"/v1/batch/{batch}/cancel"),
    ]
    for method, path in routes:
        r = await api.request(method, path, headers={"X-API-Key": OTHER_KEY})
        expect_error_cluster(r, 404, "JOB_NOT_FOUND")
    [obj] = batches()
    assert not obj["spec"].get("cancel") and not obj["spec"].get("cancelJobs")
    admin = {"X-API-Key": ADMIN_KEY}
    assert (await api.get(f"/v1/status/{job}", headers=admin)).status_code == 200
    assert (await api.post(f"/v1/batch/{batch}/cancel", headers=admin)).status_code == 202
    [obj] = batches()
    assert obj["spec"]["cancel"] is True


async def test_idempotency_same_body_same_batch_one_resource(api, batches, expect_error_cluster):
    body = {"jobs": [one_job(), one_job("wav")]}
    hdr = {"Idempotency-Key": "order-42"}
    first = await api.post("/v1/batch", json=body, headers=hdr)
    # same content, other key order and whitespace: the same request
    raw = (
        b'{"jobs": [{"output": {"format": "mp3"}, "source": {"url": "http://127.0.0.1:9/video.mp4",'
        b' "type": "url"}}, {"source": {"type": "url", "url": "http://127.0.0.1:9/video.mp4"},'
        b' "output": {"format": "wav"}}]}'
    )
    again = await api.post("/v1/batch", content=raw, headers={**hdr, "Content-Type": "application/json"})
    assert first.status_code == again.status_code == 202, again.text
    assert first.json()["data"] == again.json()["data"]
    assert again.headers["idempotent-replayed"] == "true"
    assert len(batches()) == 1
    other = await api.post("/v1/batch", json={"jobs": [one_job("ogg")]}, headers=hdr)
    expect_error_cluster(other, 409, "IDEMPOTENCY_CONFLICT")
    assert len(batches()) == 1
    # keys are scoped per tenant: another tenant's "order-42" is its own batch
    mine = await api.post("/v1/batch", json=body, headers={**hdr, "X-API-Key": OTHER_KEY})
    assert mine.status_code == 202 and mine.json()["data"]["batchId"] != first.json()["data"]["batchId"]
    assert len(batches()) == 2


async def test_idempotency_replay_needs_none_of_the_checks_of_a_new_batch(make_api, batches):
    """A retry after a lost answer gets its batch even when a new batch would now be refused: the
    store has filled, the queue is full and the source's address is no longer allowed."""
    body = {"jobs": [one_job(), one_job("wav")]}
    hdr = {"Idempotency-Key": "order-lost-answer"}
    secret = {"idempotency_secret": SecretStr("the same in every replica")}
    async with make_api(**secret) as api:
        first = await api.post("/v1/batch", json=body, headers=hdr)
        assert first.status_code == 202, first.text
        extract = await api.post("/v1/extract", json=one_job("ogg"), headers={"Idempotency-Key": "one"})
        assert extract.status_code == 202, extract.text
    closed = {"store_min_free_bytes": 10**18, "queue_capacity": 1, "allow_cidrs": "192.0.2.0/24"}
    async with make_api(**secret, **closed) as later:
        again = await later.post("/v1/batch", json=body, headers=hdr)
        assert again.status_code == 202, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["data"] == first.json()["data"]
        retried = await later.post("/v1/extract", json=one_job("ogg"), headers={"Idempotency-Key": "one"})
        assert retried.status_code == 202, retried.text
        assert retried.json()["data"]["jobId"] == extract.json()["data"]["jobId"]
        # a new batch is refused, so the replays above did not pass for want of a check
        new = await later.post("/v1/batch", json={"jobs": [one_job()]}, headers={"Idempotency-Key": "new"})
        assert new.status_code in (400, 503), new.text
    assert len(batches()) == 2


async def test_idempotency_concurrent_duplicates(api, batches):
    body = {"jobs": [one_job()]}
    rs = await asyncio.gather(
        *(api.post("/v1/batch", json=body, headers={"Idempotency-Key": "dup"}) for _ in range(10))
    )
    assert {r.status_code for r in rs} == {202}
    assert len({r.json()["data"]["batchId"] for r in rs}) == 1
    assert len(batches()) == 1


async def test_queue_full_is_exact_under_50_concurrent_submissions(make_api, batches, expect_error_cluster):
    capacity = 20
    async with make_api(queue_capacity=capacity, queue_retry_after_seconds=7) as api:
        # 50 concurrent batches of 1 or 2 jobs (75 jobs) against room for 20
        bodies = [{"jobs": [one_job()] * (1 + i % 2)} for i in range(50)]
        rs = await asyncio.gather(*(api.post("/v1/batch", json=b) for b in bodies))
        accepted = [b for b, r in zip(bodies, rs, strict=True) if r.status_code == 202]
        refused = [r for r in rs if r.status_code != 202]
        for r in refused:
            expect_error_cluster(r, 503, "QUEUE_FULL")
            assert r.headers["retry-after"] == "7"
        admitted_jobs = sum(len(b["jobs"]) for b in accepted)
        assert capacity - 1 <= admitted_jobs <= capacity  # exact: never over; full but for a 2-job misfit
        assert sum(len(o["spec"]["jobs"]) for o in batches()) == admitted_jobs
        # nothing is created for a refused batch, and room comes back when jobs leave `queued`
        expect_error_cluster(await api.post("/v1/batch", json={"jobs": [one_job()] * 2}), 503, "QUEUE_FULL")
        # refused before the source checks (cheap under overload): a blocked source gets 503 too
        blocked = {"source": {"type": "url", "url": "http://192.168.77.1/v.mp4"}, "output": {"format": "mp3"}}
        expect_error_cluster(await api.post("/v1/batch", json={"jobs": [blocked]}), 503, "QUEUE_FULL")
        expect_error_cluster(await api.post("/v1/extract", json=blocked), 503, "QUEUE_FULL")
        text = (await api.get("/metrics")).text
        assert 'audio_extract_api_jobs_refused_total{code="QUEUE_FULL",tenant="main"}' in text


async def test_queue_full_bound_with_two_replicas(make_api, batches):
    """Two processes each admit exactly against their own view: together at most 2 x capacity."""
    capacity = 10
    async with make_api(queue_capacity=capacity) as a, make_api(queue_capacity=capacity) as b:
        rs = await asyncio.gather(
            *((a if i % 2 else b).post("/v1/batch", json={"jobs": [one_job()]}) for i in range(50))
        )
        admitted = sum(r.status_code == 202 for r in rs)
        assert capacity <= admitted <= 2 * capacity
        assert len(batches()) == admitted
        # once both watches have caught up, neither admits more
        views = [c.app.state.services.queue for c in (a, b)]
        deadline = time.monotonic() + 30
        while any(v.queued() < admitted for v in views):
            assert time.monotonic() < deadline, [v.queued() for v in views]
            await asyncio.sleep(0.05)
        more = await asyncio.gather(*(c.post("/v1/batch", json={"jobs": [one_job()]}) for c in (a, b)))
        assert [r.status_code for r in more] == [503, 503]


async def test_queue_counts_only_queued_jobs(make_api, batches, write_status):
    async with make_api(queue_capacity=2) as api:
        data = (await api.post("/v1/batch", json={"jobs": [one_job(), one_job()]})).json()["data"]
        assert (await api.post("/v1/batch", json={"jobs": [one_job()]})).status_code == 503
        name = batches()[0]["metadata"]["name"]
        entries = [
            {"index": i, "jobId": j["jobId"], "jobName": j["jobId"].replace("_", "-"), "status": "processing"}
            for i, j in enumerate(data["jobs"])
        ]
        write_status(name, {"jobs": entries})
        deadline = time.monotonic() + 30
        while (r := await api.post("/v1/batch", json={"jobs": [one_job()]})).status_code != 202:
            assert r.status_code == 503 and time.monotonic() < deadline, r.text  # the watch delivers it
            await asyncio.sleep(0.05)


async def test_cancel_job_and_batch_patch_the_spec(api, batches):
    data = (await api.post("/v1/batch", json={"jobs": [one_job(), one_job(), one_job()]})).json()["data"]
    r = await api.post(f"/v1/jobs/{data['jobs'][1]['jobId']}/cancel")
    assert r.status_code == 202, r.text
    assert r.json()["message"] == "Cancellation requested"
    r = await api.post(f"/v1/jobs/{data['jobs'][1]['jobId']}/cancel")  # idempotent
    assert r.status_code == 202
    assert batches()[0]["spec"]["cancelJobs"] == [1]
    r = await api.post(f"/audio-extract/v1/batch/{data['batchId']}/cancel")
    assert r.status_code == 202, r.text
    assert r.json()["data"]["cancelRequested"] is True
    assert batches()[0]["spec"]["cancel"] is True


async def test_download_answers_by_state(api, api_settings, batches, write_status, expect_error_cluster):
    data = (
        await api.post("/v1/batch", json={"jobs": [one_job(), one_job("flac"), one_job(), one_job()]})
    ).json()["data"]
    j = [x["jobId"] for x in data["jobs"]]
    name = batches()[0]["metadata"]["name"]
    r = await api.get(f"/v1/download/{j[0]}")
    expect_error_cluster(r, 202, "JOB_NOT_COMPLETED")

    audio = os.urandom(100_000)
    out = api_settings.store_root / j[1] / "song.flac"
    out.parent.mkdir(parents=True)
    out.write_bytes(audio)
    now = timefmt.now()
    past, future = timefmt.iso(now.replace(year=now.year - 1)), timefmt.iso(now.replace(year=now.year + 1))
    entry = {"jobName": "x", "createdAt": timefmt.iso(now)}
    write_status(
        name,
        {
            "jobs": [
                {
                    **entry,
                    "index": 0,
                    "jobId": j[0],
                    "status": "processing",
                    "currentStep": "extracting_audio",
                    "progress": 40,
                },
                {
                    **entry,
                    "index": 1,
                    "jobId": j[1],
                    "status": "completed",
                    "progress": 100,
                    "expiresAt": future,
                    "completedAt": timefmt.iso(now),
                    "outputFile": {
                        "filename": "song.flac",
                        "path": f"{j[1]}/song.flac",
                        "size": len(audio),
                        "format": "flac",
                        "duration": 1.5,
                    },
                },
                {
                    **entry,
                    "index": 2,
                    "jobId": j[2],
                    "status": "failed",
                    "error": {"code": "NO_AUDIO_STREAM", "message": "The source has no audio stream"},
                },
                {
                    **entry,
                    "index": 3,
                    "jobId": j[3],
                    "status": "completed",
                    "expiresAt": past,
                    "outputFile": {
                        "filename": "gone.mp3",
                        "path": f"{j[3]}/gone.mp3",
                        "size": 1,
                        "format": "mp3",
                    },
                },
            ]
        },
    )
    expect_error_cluster(await api.get(f"/v1/download/{j[0]}"), 202, "JOB_NOT_COMPLETED")

    r = await api.get(f"/v1/download/{j[1]}")
    assert r.status_code == 200 and r.content == audio
    assert r.headers["content-type"] == "audio/flac"
    assert r.headers["content-disposition"] == 'attachment; filename="song.flac"'
    assert r.headers["content-length"] == str(len(audio))
    r = await api.get(f"/v1/download/{j[1]}", headers={"Range": "bytes=1000-1999"})
    assert r.status_code == 206 and r.content == audio[1000:2000]
    assert r.headers["content-range"] == f"bytes 1000-1999/{len(audio)}"
    assert r.headers["content-length"] == "1000"
    r = await api.get(f"/v1/download/{j[1]}", headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == audio[-10:]
    expect_error_cluster(
        await api.get(f"/v1/download/{j[1]}", headers={"Range": "bytes=999999-"}), 416, "INVALID_REQUEST"
    )

    err = expect_error_cluster(await api.get(f"/v1/download/{j[2]}"), 409, "NO_AUDIO_STREAM")
    assert err["message"] == "The source has no audio stream"
    expect_error_cluster(await api.get(f"/v1/download/{j[3]}"), 410, "FILE_EXPIRED")

    status = (await api.get(f"/v1/status/{j[1]}")).json()["data"]
    assert status["downloadUrl"] == f"/audio-extract/v1/download/{j[1]}"
    assert status["outputFile"]["url"] == status["downloadUrl"]
    assert status["outputFile"]["filename"] == "song.flac" and status["expired"] is False
    assert (await api.get(f"/v1/status/{j[3]}")).json()["data"]["expired"] is True
    processing = (await api.get(f"/v1/status/{j[0]}")).json()["data"]
    assert (processing["status"], processing["currentStep"], processing["progress"]) == (
        "processing",
        "extracting_audio",
        40,
    )


async def test_readyz_with_a_reachable_api_server(api):
    r = await api.get("/readyz")
    assert r.status_code == 200 and r.json()["data"] == {"status": "ready"}


def test_keys_are_stored_hashed(api_settings):
    text = api_settings.api_keys_path.read_text()
    assert "axk_" not in text
    assert hashlib.sha256(b"axk_cluster-test-key").hexdigest() in text
