"""Redirects and names: every hop goes to the *name* the URL and the Location give, re-checked by the
address guard, with that name in ``Host`` and in TLS (SNI and certificate verification).

The servers are name-based virtual hosts on loopback (404 unless ``Host`` is their name), reached
through made-up names that a fake resolver maps to loopback addresses; https uses a CA made for the
test, which the worker trusts only because the test sets ``SSL_CERT_FILE``.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

import pytest

from audio_extract_common.batch_status import ErrorCode
from support.loopback_servers import TestCA, fake_dns
from support.media_files import Media
from support.worker_runs import InProcess, job_spec

ONLY_FIRST = "127.0.0.1/32"


def url_job(url: str) -> dict:
    return job_spec({"type": "url", "url": url}, {"format": "mp3"})


def _redirect(location: str, status: int = 302):  # type: ignore[no-untyped-def]
    def send(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return send


def _succeeded(run) -> None:  # type: ignore[no-untyped-def]
    assert run.result.error is None, run.result.error
    assert run.result.output is not None


@pytest.mark.parametrize(
    "location",
    [
        "/media/final.mp4",  # absolute path: what Django, Flask and Express send by default
        "final.mp4",  # relative to /media/
        "../media/./final.mp4",
        "//media.test:{port}/media/final.mp4",  # protocol-relative
        "http://media.test:{port}/media/final.mp4",
    ],
)
def test_redirect_keeps_the_name(
    location: str,
    media: Media,
    make_server,
    worker: InProcess,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = make_server(vhost="media.test")
    site.file("/media/final.mp4", media.aac_mp4)
    site.routes["/media/start.mp4"] = _redirect(location.format(port=site.port))
    lookups = fake_dns(monkeypatch, {"media.test": ["127.0.0.1"]})
    run = worker.run(url_job(site.url("/media/start.mp4")), allow_cidrs=ONLY_FIRST)
    _succeeded(run)
    assert [(path, headers["Host"]) for _, path, headers, _ in site.hits] == [
        ("/media/start.mp4", f"media.test:{site.port}"),
        ("/media/final.mp4", f"media.test:{site.port}"),
    ]
    assert lookups == ["media.test", "media.test"]  # each hop resolved and checked again


def test_protocol_relative_redirect_to_another_name(
    media: Media,
    make_server,
    worker: InProcess,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    front, cdn = make_server(vhost="www.test"), make_server(vhost="cdn.test")
    cdn.file("/v/final.mp4", media.aac_mp4)
    front.routes["/watch"] = _redirect(f"//cdn.test:{cdn.port}/v/final.mp4", 301)
    lookups = fake_dns(monkeypatch, {"www.test": ["127.0.0.1"], "cdn.test": ["127.0.0.1"]})
    run = worker.run(url_job(front.url("/watch")), allow_cidrs=ONLY_FIRST)
    _succeeded(run)
    assert [h["Host"] for _, _, h, _ in cdn.hits] == [f"cdn.test:{cdn.port}"]
    assert lookups == ["www.test", "cdn.test"]


def test_relative_redirect_is_checked_again(
    media: Media,
    make_server,
    worker: InProcess,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same name, looked up again for the next hop, now answers a refused address: no request
    goes there, and the error does not say which address it was."""
    site = make_server(vhost="media.test")
    internal = make_server("127.0.0.2", site.port)
    site.routes["/start.mp4"] = _redirect("/final.mp4")
    internal.file("/final.mp4", media.aac_mp4)
    fake_dns(monkeypatch, {"media.test": ["127.0.0.1", "127.0.0.2"]})
    run = worker.run(url_job(site.url("/start.mp4")), allow_cidrs=ONLY_FIRST)
    error = run.result.error
    assert error is not None and error.code == ErrorCode.DOWNLOAD_FAILED
    assert "redirect target is not allowed" in error.message and "private address" in error.message
    assert "127.0.0.2" not in f"{error.message} {error.details}"
    assert internal.hits == [] and len(site.hits) == 1


@pytest.mark.parametrize("location", ["/media/final.mp4", "//media.test:{port}/media/final.mp4"])
def test_https_redirect_keeps_sni_and_verifies_the_name(
    location: str,
    media: Media,
    make_server,  # type: ignore[no-untyped-def]
    worker: InProcess,
    test_ca: TestCA,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = make_server(vhost="media.test", tls=test_ca.server_context("media.test"))
    site.file("/media/final.mp4", media.aac_mp4)
    site.routes["/media/start.mp4"] = _redirect(location.format(port=site.port))
    fake_dns(monkeypatch, {"media.test": ["127.0.0.1"]})
    monkeypatch.setenv("SSL_CERT_FILE", str(test_ca.ca_file))
    run = worker.run(url_job(site.url("/media/start.mp4")), allow_cidrs=ONLY_FIRST)
    _succeeded(run)
    assert site.sni == ["media.test", "media.test"]
    assert [h["Host"] for _, _, h, _ in site.hits] == [f"media.test:{site.port}"] * 2


def test_https_untrusted_ca_fails(
    media: Media,
    make_server,
    worker: InProcess,
    test_ca: TestCA,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The control for the test above: without ``SSL_CERT_FILE`` the test CA is not trusted."""
    site = make_server(vhost="media.test", tls=test_ca.server_context("media.test"))
    site.file("/v.mp4", media.aac_mp4)
    fake_dns(monkeypatch, {"media.test": ["127.0.0.1"]})
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    run = worker.run(url_job(site.url("/v.mp4")), allow_cidrs=ONLY_FIRST)
    assert run.result.error is not None and run.result.error.code == ErrorCode.DOWNLOAD_FAILED
    assert "certificate" in f"{run.result.error.message} {run.result.error.details}".lower()
    assert site.hits == []


# "straße.test" is xn--strae-oqa.test in IDNA 2008 (what httpx sends as Host) but strasse.test in
# IDNA 2003 (what getaddrinfo and the ssl module make of a non-ASCII str).
IDN, ACE, IDNA2003 = "straße.test", "xn--strae-oqa.test", "strasse.test"


@pytest.mark.parametrize("tls", [False, True])
def test_idn_host_resolved_and_sent_as_the_same_ascii_name(
    tls: bool,
    media: Media,
    make_server,  # type: ignore[no-untyped-def]
    worker: InProcess,
    test_ca: TestCA,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = make_server(vhost=ACE, tls=test_ca.server_context(ACE) if tls else None)
    decoy = make_server("127.0.0.2", site.port, tls=test_ca.server_context(IDNA2003) if tls else None)
    site.file("/v.mp4", media.aac_mp4)
    decoy.file("/v.mp4", media.aac_mp4)
    lookups = fake_dns(monkeypatch, {ACE: ["127.0.0.1"], IDNA2003: ["127.0.0.2"]})
    monkeypatch.setenv("SSL_CERT_FILE", str(test_ca.ca_file))
    url = f"{'https' if tls else 'http'}://{IDN}:{site.port}/v.mp4"
    run = worker.run(url_job(url), allow_cidrs="127.0.0.0/8")
    _succeeded(run)
    assert lookups == [ACE]
    assert decoy.hits == [] and [h["Host"] for _, _, h, _ in site.hits] == [f"{ACE}:{site.port}"]
    assert site.sni == ([ACE] if tls else [])
