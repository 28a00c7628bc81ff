"""Requests that reach no operation (docs/contract.md §7 "Errors"): an unknown route is 404 NOT_FOUND, a
known route with a method it does not accept is 405 METHOD_NOT_ALLOWED with an `Allow` header,
both in the envelope and alike under both path prefixes."""

from __future__ import annotations

import pytest

PREFIXES = ["/v1", "/audio-extract/v1"]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("path", ["/nope", "/batch/batch_0123456789abcdef/nope", "/status", "/jobs/cancel"])
async def test_unknown_route_is_not_found(client, expect_error, prefix, path):
    err = expect_error(await client.get(prefix + path), 404, "NOT_FOUND")
    assert err["message"]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize(
    "method,path", [("POST", "/batch/"), ("GET", "/status/job_0123456789abcdef/"), ("POST", "/uploads/")]
)
async def test_a_trailing_slash_is_another_route(client, expect_error, prefix, method, path):
    reply = await client.request(method, prefix + path, headers={"Host": "elsewhere.test"})
    expect_error(reply, 404, "NOT_FOUND")
    assert "location" not in reply.headers


@pytest.mark.parametrize("path", ["/v2/batch", "/", "/audio-extract/healthz", "/audio-extract/v2/status/x"])
async def test_unknown_prefix_is_not_found(client, expect_error, path):
    expect_error(await client.post(path), 404, "NOT_FOUND")


async def test_unknown_route_needs_no_key(client, expect_error):
    client.headers.pop("X-API-Key")
    expect_error(await client.get("/v1/nope"), 404, "NOT_FOUND")


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize(
    "method,path,allow",
    [
        ("GET", "/batch", "POST"),
        ("DELETE", "/batch", "POST"),
        ("PUT", "/extract", "POST"),
        ("POST", "/status/job_0123456789abcdef", "GET"),
        ("DELETE", "/download/job_0123456789abcdef", "GET"),
        ("GET", "/jobs/job_0123456789abcdef/cancel", "POST"),
        ("PATCH", "/batch/batch_0123456789abcdef", "GET"),
        ("GET", "/uploads", "POST"),
    ],
)
async def test_wrong_method_is_405_with_allow(client, expect_error, prefix, method, path, allow):
    r = await client.request(method, prefix + path)
    expect_error(r, 405, "METHOD_NOT_ALLOWED")
    assert r.headers["allow"] == allow


async def test_wrong_method_on_a_probe(client, expect_error):
    r = await client.post("/healthz")
    expect_error(r, 405, "METHOD_NOT_ALLOWED")
    assert r.headers["allow"] == "GET"


async def test_allow_names_every_route_of_the_path(client, expect_error):
    # One path served by two routes: Starlette's own 405 names only the first one.
    async def handler() -> dict:
        return {}

    app = client.app
    app.router.add_api_route("/v1/twice", handler, methods=["GET"])
    app.router.add_api_route("/v1/twice", handler, methods=["PUT"])
    r = await client.delete("/v1/twice")
    expect_error(r, 405, "METHOD_NOT_ALLOWED")
    assert r.headers["allow"] == "GET, PUT"
