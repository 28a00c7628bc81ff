"""Every request-validation error the API emits, with its HTTP status, code and envelope.

All of these are decided before the API would talk to Kubernetes (which, in this tier, is an
unreachable address: reaching it would answer 503 and fail the test).
"""

from __future__ import annotations

import json

import pytest

MP3 = {"format": "mp3"}
PUBLIC = "http://8.8.8.8/video.mp4"  # a literal public address: checked without DNS


def job(url: str = PUBLIC, **output) -> dict:
    return {"source": {"type": "url", "url": url}, "output": {**MP3, **output}}


def fields(err: dict) -> list[str]:
    return [d["field"] for d in err["details"]]


@pytest.mark.parametrize(
    "body,field",
    [
        ({}, "jobs"),
        ({"jobs": []}, "jobs"),
        ({"jobs": "x"}, "jobs"),
        ({"jobs": [job()], "unknown": 1}, "unknown"),
        ({"jobs": [{**job(), "extra": True}]}, "jobs[0].extra"),
        (
            {"jobs": [{"source": {"type": "url", "url": PUBLIC, "headers": {}}, "output": MP3}]},
            "jobs[0].source.headers",
        ),
        ({"jobs": [1, "x"]}, "jobs[0]"),
        ({"jobs": [job()], "webhook": "ftp://hooks.example/x"}, "webhook"),
        ({"jobs": [{**job(), "options": {"priority": "urgent"}}]}, "jobs[0].options.priority"),
        # Names are sanitized, never refused (docs/contract.md §2); only a name over the input bound is.
        ({"jobs": [{**job(), "options": {"filename": "a" * 1025}}]}, "jobs[0].options.filename"),
    ],
)
async def test_invalid_request(client, expect_error, body, field):
    err = expect_error(await client.post("/v1/batch", json=body), 400, "INVALID_REQUEST")
    assert field in fields(err), err


@pytest.mark.parametrize(
    "raw,ctype",
    [
        (b"{", "application/json"),
        (b"", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"\xff\xfe{}", "application/json"),
        (b'{"jobs": 1e999999}', "application/json"),
        (b'{"jobs": ' + b"1" * 5000 + b"}", "application/json"),  # over the int digit limit
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),  # deeper than the recursion limit
        (
            b'{"jobs": [{"source": {"type": "url", "url": "http://8.8.8.8/"}, "output": {"format": "mp3"}}]}',
            "text/plain",
        ),
    ],
    ids=["truncated", "empty", "array", "bad-utf8", "huge-float", "huge-int", "deep", "content-type"],
)
async def test_malformed_bodies_are_clean_400(client, expect_error, raw, ctype):
    expect_error(
        await client.post("/v1/batch", content=raw, headers={"Content-Type": ctype}), 400, "INVALID_REQUEST"
    )


async def test_moderately_deep_json_is_refused_by_depth(client, expect_error):
    deep = {"jobs": [job()], "webhook": None}
    node: dict = deep
    for _ in range(30):
        node["x"] = {}
        node = node["x"]
    err = expect_error(await client.post("/v1/batch", json=deep), 400, "INVALID_REQUEST")
    assert "nested" in err["message"]


async def test_too_many_jobs(client, expect_error):
    err = expect_error(await client.post("/v1/batch", json={"jobs": [job()] * 11}), 400, "TOO_MANY_JOBS")
    assert fields(err) == ["jobs"]


@pytest.mark.parametrize(
    "source,field",
    [
        ({"type": "url", "url": "ftp://8.8.8.8/v.mp4"}, "jobs[0].source.url"),
        ({"type": "url", "url": "file:///etc/passwd"}, "jobs[0].source.url"),
        ({"type": "url", "url": "http://user:pw@8.8.8.8/v.mp4"}, "jobs[0].source.url"),
        ({"type": "url", "url": "http://8.8.8.8:99999/v.mp4"}, "jobs[0].source.url"),
        ({"type": "url", "url": "http://8.8.8.8/" + "a" * 2040}, "jobs[0].source.url"),
        ({"type": "url"}, "jobs[0].source.url"),
        ({"type": "upload"}, "jobs[0].source.file"),
        ({"type": "upload", "file": "../../etc/passwd"}, "jobs[0].source.file"),
        (
            {"type": "upload", "file": "upl_0123456789abcdef"},
            "jobs[0].source.file",
        ),  # well formed, not uploaded
        ({"type": "torrent", "url": PUBLIC}, "jobs[0].source.type"),
    ],
    ids=[
        "ftp",
        "file",
        "credentials",
        "port",
        "too-long",
        "no-url",
        "no-file",
        "bad-upload-id",
        "unknown-upload",
        "bad-type",
    ],
)
async def test_invalid_source(client, expect_error, source, field):
    err = expect_error(
        await client.post("/v1/batch", json={"jobs": [{"source": source, "output": MP3}]}),
        400,
        "INVALID_SOURCE",
    )
    assert fields(err) == [field], err


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "0.0.0.0",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.100.100.200",
        "198.18.0.1",
        "240.0.0.1",
        "[::1]",
        "[::]",
        "[fe80::1]",
        "[fc00::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:169.254.169.254]",
        "[64:ff9b::a9fe:a9fe]",
        "[2002:a9fe:a9fe::1]",
        "[::127.0.0.1]",
        "[fd00:ec2::254]",
        "0177.0.0.1",
        "2130706433",
        "0x7f.1",
        "127.1",
        "localhost",
        "LOCALHOST.",
    ],
)
async def test_blocked_source_addresses(client, expect_error, host):
    err = expect_error(
        await client.post("/v1/batch", json={"jobs": [job(f"http://{host}/v.mp4")]}), 400, "INVALID_SOURCE"
    )
    assert fields(err) == ["jobs[0].source.url"]


@pytest.mark.parametrize("where", ["batch", "job"])
async def test_blocked_webhook_is_invalid_request(client, expect_error, where):
    body = {"jobs": [job()]}
    if where == "batch":
        body["webhook"] = "http://169.254.169.254/latest/meta-data"
        field = "webhook"
    else:
        body["jobs"] = [job(), {**job(), "options": {"webhook": "http://10.1.2.3/hook"}}]
        field = "jobs[1].options.webhook"
    err = expect_error(await client.post("/v1/batch", json=body), 400, "INVALID_REQUEST")
    assert fields(err) == [field]


@pytest.mark.parametrize(
    "output,field",
    [
        ({"format": "mp4"}, "jobs[0].output.format"),
        ({"format": "flac", "bitrate": "192k"}, "jobs[0].output.bitrate"),
        ({"format": "wav", "bitrate": "192k"}, "jobs[0].output.bitrate"),
        ({"format": "mp3", "bitrate": "999k"}, "jobs[0].output.bitrate"),
        ({"format": "mp3", "bitrate": "fast"}, "jobs[0].output.bitrate"),
        ({"format": "mp3", "quality": "ultra"}, "jobs[0].output.quality"),
        ({"format": "mp3", "normalize": "maybe"}, "jobs[0].output.normalize"),
        ({"quality": "high"}, "jobs[0].output.format"),
    ],
)
async def test_invalid_output(client, expect_error, output, field):
    body = {"jobs": [{"source": {"type": "url", "url": PUBLIC}, "output": output}]}
    err = expect_error(await client.post("/v1/batch", json=body), 400, "INVALID_OUTPUT")
    assert fields(err) == [field], err


async def test_details_name_the_failing_job_by_index(client, expect_error):
    jobs = [
        job(),
        job(),
        job(),
        {"source": {"type": "url", "url": PUBLIC}, "output": {"format": "flac", "bitrate": "320k"}},
    ]
    err = expect_error(await client.post("/v1/batch", json={"jobs": jobs}), 400, "INVALID_OUTPUT")
    assert err["details"] == [
        {"field": "jobs[3].output.bitrate", "message": "flac is lossless and takes no bitrate"}
    ]


async def test_batch_validation_is_all_or_nothing_and_reports_all(client, expect_error):
    jobs = [job("ftp://x/"), job(format="ogg", bitrate="10k"), job()]
    err = expect_error(await client.post("/v1/batch", json={"jobs": jobs}), 400, "INVALID_SOURCE")
    assert fields(err) == ["jobs[0].source.url", "jobs[1].output.bitrate"]


async def test_extract_validation_names_fields_without_jobs_prefix(client, expect_error):
    body = {"source": {"type": "url", "url": PUBLIC}, "output": {"format": "wav", "bitrate": "128k"}}
    err = expect_error(await client.post("/v1/extract", json=body), 400, "INVALID_OUTPUT")
    assert fields(err) == ["output.bitrate"]
    err = expect_error(
        await client.post(
            "/v1/extract", json={"source": {"type": "url", "url": "http://127.0.0.1/x"}, "output": MP3}
        ),
        400,
        "INVALID_SOURCE",
    )
    assert fields(err) == ["source.url"]
    expect_error(await client.post("/v1/extract", json={"jobs": [job()]}), 400, "INVALID_REQUEST")


@pytest.mark.parametrize("value", ["", "x" * 256, "spaces are not allowed", "tab\there"])
async def test_bad_idempotency_key(client, expect_error, value):
    r = await client.post("/v1/batch", json={"jobs": [job()]}, headers={"Idempotency-Key": value})
    expect_error(r, 400, "INVALID_REQUEST")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/status/bad",
        "/v1/status/job_ABCDEF0123456789",
        "/v1/download/job_1",
        "/v1/status/job_0123456789abcdef0",
        "/v1/jobs/x/cancel",
        "/v1/batch/batch_xyz",
        "/v1/batch/job_0123456789abcdef/cancel",
        "/audio-extract/v1/status/bad",
    ],
)
async def test_malformed_ids(client, expect_error, path):
    method = "POST" if path.endswith("/cancel") else "GET"
    expect_error(await client.request(method, path), 400, "INVALID_JOB_ID")


async def test_well_formed_foreign_ids_are_404_without_a_lookup(client, expect_error):
    # The contract's own example is well formed but not hex: no batch can hold it.
    expect_error(await client.get("/v1/status/job_a1b2c3d4e5f6g7h8"), 404, "JOB_NOT_FOUND")
    expect_error(await client.get("/v1/download/job_a1b2c3d4e5f6g7h8"), 404, "JOB_NOT_FOUND")
    expect_error(await client.get("/v1/batch/batch_zzzzzzzzzzzzzzzz"), 404, "JOB_NOT_FOUND")


async def test_body_limit_by_content_length(make_client, expect_error):
    async with make_client(max_body_bytes=4096) as c:
        body = json.dumps({"jobs": [job()], "webhook": "http://8.8.8.8/" + "a" * 5000}).encode()
        r = await c.post("/v1/batch", content=body, headers={"Content-Type": "application/json"})
        expect_error(r, 413, "PAYLOAD_TOO_LARGE")


async def test_body_limit_counts_a_chunked_stream(make_client, expect_error):
    sent = 0

    async def endless():
        nonlocal sent
        for _ in range(1000):
            sent += 1024
            yield b" " * 1024

    async with make_client(max_body_bytes=8192) as c:
        r = await c.post("/v1/batch", content=endless(), headers={"Content-Type": "application/json"})
        expect_error(r, 413, "PAYLOAD_TOO_LARGE")
    assert sent < 64 * 1024  # cut off near the limit, not after reading everything


async def test_kubernetes_unreachable_is_503(client, expect_error):
    r = await client.post("/v1/batch", json={"jobs": [job()]})
    expect_error(r, 503, "SERVICE_UNAVAILABLE")
    assert int(r.headers["retry-after"]) > 0
    expect_error(await client.get("/v1/status/job_0123456789abcd01"), 503, "SERVICE_UNAVAILABLE")
    expect_error(await client.get("/readyz"), 503, "SERVICE_UNAVAILABLE")
    assert (await client.get("/healthz")).status_code == 200


async def test_unexpected_failure_is_internal_error_without_trace(make_client, tmp_path, expect_error):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("the store root is a file, so writing an upload fails unexpectedly")
    async with make_client(store_root=blocker) as c:
        r = await c.post("/v1/uploads", content=b"data")
        err = expect_error(r, 500, "INTERNAL_ERROR")
        assert err == {"code": "INTERNAL_ERROR", "message": "Internal error"}
        assert "not-a-dir" not in r.text


async def test_refusals_are_counted_in_metrics(client):
    await client.post("/v1/batch", json={"jobs": [job()] * 11})
    text = (await client.get("/metrics")).text
    assert 'audio_extract_api_jobs_refused_total{code="TOO_MANY_JOBS",tenant="main"} 1.0' in text
    assert 'audio_extract_api_requests_total{method="POST",route="/v1/batch",status="400"} 1.0' in text
