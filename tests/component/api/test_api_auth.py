"""Auth: 401 for missing/empty/unknown keys, 403 for a key without the scope, rotation without
restart, per-key rate limit."""

from __future__ import annotations

import hashlib
import time

import pytest

KEY = "axk_component-test-key"
OTHER_KEY = "axk_second-key"
READ_ONLY_KEY = "axk_read-only-key"

# A route that answers without Kubernetes once authenticated: a malformed id is 400.
PROBE = "/v1/status/not-an-id"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": None},
        {"X-API-Key": ""},
        {"X-API-Key": "axk_wrong"},
        {"X-API-Key": KEY + " "},
        {"X-API-Key": KEY.upper()},
        {"Authorization": f"Bearer {KEY}", "X-API-Key": None},
    ],
    ids=["missing", "empty", "unknown", "trailing-space", "wrong-case", "bearer-instead"],
)
async def test_bad_keys_are_401_with_www_authenticate(client, expect_error, headers):
    hdrs = {k: v for k, v in headers.items() if v is not None}
    if headers.get("X-API-Key") is None:
        client.headers.pop("X-API-Key")
    r = await client.get(PROBE, headers=hdrs)
    expect_error(r, 401, "UNAUTHORIZED")
    assert "X-API-Key" in r.headers["www-authenticate"]


@pytest.mark.parametrize(
    "method,path",
    [
        ("POST", "/v1/batch"),
        ("POST", "/v1/extract"),
        ("GET", "/v1/status/job_0123456789abcd01"),
        ("GET", "/v1/download/job_0123456789abcd01"),
        ("GET", "/v1/batch/batch_0123456789abcd00"),
        ("POST", "/v1/jobs/job_0123456789abcd01/cancel"),
        ("POST", "/v1/batch/batch_0123456789abcd00/cancel"),
        ("POST", "/v1/uploads"),
        ("POST", "/audio-extract/v1/batch"),
    ],
)
async def test_every_public_route_needs_a_key(client, expect_error, method, path):
    client.headers.pop("X-API-Key")
    r = await client.request(method, path, content=b'{"jobs": []}')
    expect_error(r, 401, "UNAUTHORIZED")


async def test_header_name_is_case_insensitive(client, expect_error):
    client.headers.pop("X-API-Key")
    r = await client.get(PROBE, headers={"x-api-key": KEY})
    expect_error(r, 400, "INVALID_JOB_ID")


async def test_probes_and_documents_need_no_key(client):
    client.headers.pop("X-API-Key")
    assert (await client.get("/healthz")).json() == {"success": True, "data": {"status": "ok"}}
    assert (await client.get("/metrics")).status_code == 200
    doc = (await client.get("/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    assert (await client.get("/docs")).status_code == 200


async def test_read_only_key_cannot_submit_or_cancel(client, expect_error):
    hdrs = {"X-API-Key": READ_ONLY_KEY}
    expect_error(await client.post("/v1/batch", headers=hdrs, json={}), 403, "FORBIDDEN")
    expect_error(await client.post("/v1/uploads", headers=hdrs, content=b"x"), 403, "FORBIDDEN")
    expect_error(await client.post("/v1/jobs/job_0123456789abcd01/cancel", headers=hdrs), 403, "FORBIDDEN")
    # ...but may read.
    expect_error(await client.get(PROBE, headers=hdrs), 400, "INVALID_JOB_ID")


async def test_key_rotation_without_restart(make_client, keys_file, expect_error):
    new_key = "axk_rotated-in"
    async with make_client(api_keys_reload_seconds=0.2) as c:
        expect_error(await c.get(PROBE), 400, "INVALID_JOB_ID")
        expect_error(await c.get(PROBE, headers={"X-API-Key": new_key}), 401, "UNAUTHORIZED")
        keys_file.write_text(f"rotated {hashlib.sha256(new_key.encode()).hexdigest()}\n")
        time.sleep(0.25)  # one reload interval (the production default is 10 s, at most 60 s)
        expect_error(await c.get(PROBE, headers={"X-API-Key": new_key}), 400, "INVALID_JOB_ID")
        expect_error(await c.get(PROBE), 401, "UNAUTHORIZED")


async def test_keys_from_a_mounted_secret_directory(make_client, tmp_path, expect_error):
    secret = tmp_path / "secret"
    (secret / "..2026_11_29").mkdir(parents=True)  # a Secret volume's hidden timestamped dir
    (secret / "ci").write_text(hashlib.sha256(b"axk_from-secret").hexdigest() + "\n")
    (secret / "broken").write_text("not-a-digest\n")
    async with make_client(api_keys_path=secret) as c:
        expect_error(await c.get(PROBE, headers={"X-API-Key": "axk_from-secret"}), 400, "INVALID_JOB_ID")
        expect_error(await c.get(PROBE), 401, "UNAUTHORIZED")
        expect_error(await c.get(PROBE, headers={"X-API-Key": "not-a-digest"}), 401, "UNAUTHORIZED")


async def test_rate_limit_is_per_key(make_client, expect_error):
    async with make_client(rate_limit_per_minute=6, rate_limit_burst=3) as c:
        for _ in range(3):
            expect_error(await c.get(PROBE), 400, "INVALID_JOB_ID")
        r = await c.get(PROBE)
        expect_error(r, 429, "RATE_LIMITED")
        assert 1 <= int(r.headers["retry-after"]) <= 10
        # Another key has its own bucket.
        for _ in range(3):
            expect_error(await c.get(PROBE, headers={"X-API-Key": OTHER_KEY}), 400, "INVALID_JOB_ID")
        # Unauthenticated requests never consume a key's budget.
        expect_error(await c.get(PROBE, headers={"X-API-Key": "axk_nobody"}), 401, "UNAUTHORIZED")


def test_key_comparison_is_constant_time():
    """Static check: secret material is compared with hmac.compare_digest, never ==."""
    import inspect

    from audio_extract_api import auth, submit

    src = inspect.getsource(auth.KeyStore.authenticate)
    assert "hmac.compare_digest(" in src
    assert "==" not in src
    assert "hmac.compare_digest(" in inspect.getsource(submit._replay)
