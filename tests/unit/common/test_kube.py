"""``audio_extract_common.kube``: every client failure leaves ``converted()`` as one class of the tree,
and ``connect`` reads the kubeconfig it is given."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import aiohttp
import pytest
from kubernetes_asyncio import config
from kubernetes_asyncio.client.exceptions import ApiException

from audio_extract_common.kube import (
    AlreadyExists,
    Conflict,
    Forbidden,
    Invalid,
    KubeError,
    NotFound,
    Transient,
    WatchExpired,
    connect,
    converted,
)
from support.kubeconfigs import kubeconfig_for
from support.loopback_servers import Server, json_route


def api_exception(
    status: int, reason: str = "", message: str = "", headers: dict[str, str] | None = None
) -> ApiException:
    e = ApiException(status=status, reason="HTTP reason")
    e.body = json.dumps({"kind": "Status", "reason": reason, "message": message, "code": status})
    e.headers = headers
    return e


def raised(e: BaseException) -> BaseException:
    with pytest.raises(BaseException) as caught, converted():
        raise e
    return caught.value


@pytest.mark.parametrize(
    ("status", "reason", "cls"),
    [
        (404, "NotFound", NotFound),
        (409, "AlreadyExists", AlreadyExists),
        (409, "Conflict", Conflict),
        (400, "BadRequest", Invalid),
        (422, "Invalid", Invalid),
        (401, "Unauthorized", Forbidden),
        (403, "Forbidden", Forbidden),
        (410, "Expired", WatchExpired),
        (429, "TooManyRequests", Transient),
        (500, "InternalError", Transient),
        (503, "ServiceUnavailable", Transient),
        (504, "Timeout", Transient),
    ],
)
def test_each_answer_has_its_class(status: int, reason: str, cls: type[KubeError]) -> None:
    e = raised(api_exception(status, reason, "what the server said"))
    assert type(e) is cls
    assert (e.status, e.reason, e.message) == (status, reason, "what the server said")
    assert str(e) == f"{status} {reason}: what the server said"
    assert e.__cause__ is None and e.__suppress_context__


@pytest.mark.parametrize("status", [405, 406, 413, 415])
def test_an_answer_the_tree_does_not_name_is_a_plain_kube_error(status: int) -> None:
    e = raised(api_exception(status, "Unexpected"))
    assert type(e) is KubeError and e.status == status


def test_retry_after_comes_from_the_answer() -> None:
    assert isinstance(
        e := raised(api_exception(429, "TooManyRequests", headers={"Retry-After": "7"})), Transient
    )
    assert e.retry_after == "7"
    assert isinstance(e := raised(api_exception(503)), Transient)
    assert e.retry_after is None


def test_a_body_that_is_no_status_object_keeps_the_http_reason() -> None:
    for body in ("<html>bad gateway</html>", None, json.dumps(["not", "a", "status"])):
        e = ApiException(status=502, reason="Bad Gateway")
        e.body = body
        converted_e = raised(e)
        assert isinstance(converted_e, Transient)
        assert (converted_e.reason, converted_e.message) == ("Bad Gateway", "")


@pytest.mark.parametrize(
    "error",
    [
        aiohttp.ClientConnectionError("connection reset"),
        aiohttp.ServerDisconnectedError(),
        TimeoutError(),
        ConnectionRefusedError(111, "Connection refused"),
        OSError("no route to host"),
        config.ConfigException("Invalid kube-config file"),
    ],
)
def test_no_answer_is_transient(error: Exception) -> None:
    e = raised(error)
    assert type(e) is Transient
    assert (e.status, e.reason, e.retry_after) == (0, type(error).__name__, None)


def test_other_exceptions_pass_through() -> None:
    error = ValueError("not the client's")
    assert raised(error) is error


KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: one
  cluster: {server: "https://one.invalid:6443"}
- name: two
  cluster: {server: "https://two.invalid:6443"}
users:
- name: u
  user: {token: t}
contexts:
- name: one
  context: {cluster: one, user: u}
- name: two
  context: {cluster: two, user: u}
current-context: one
"""


async def test_connect_reads_the_kubeconfig_given_and_its_context(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    for context, host in ((None, "https://one.invalid:6443"), ("two", "https://two.invalid:6443")):
        api = await connect(path, context)
        try:
            assert api.configuration.host == host
        finally:
            await api.close()


async def test_connect_without_a_usable_kubeconfig_is_transient(tmp_path: Path) -> None:
    with pytest.raises(Transient) as caught:
        await connect(tmp_path / "missing")
    assert caught.value.status == 0 and caught.value.reason == "ConfigException"


async def test_the_client_ignores_proxy_variables_and_netrc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment's proxy points nowhere and ``.netrc`` is unreadable: the request still goes
    straight to the server the kubeconfig names (and no thread reads either per request)."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead}")
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{dead}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc-is-a-directory"))
    (tmp_path / "netrc-is-a-directory").mkdir()
    server = Server(routes={"/version": json_route({"gitVersion": "v1.0.0"})}).start()
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_for(server.url("")))
    api = await connect(path)
    try:
        with converted():
            reply = await api.call_api(
                "/version", "GET", response_types_map={200: "object"}, _return_http_data_only=True
            )
    finally:
        await api.close()
        server.stop()
    assert reply == {"gitVersion": "v1.0.0"}
