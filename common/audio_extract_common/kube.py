"""The Kubernetes client of the API and the operator: how it is made, and the one tree of errors
its calls raise.

Nothing else touches ``kubernetes_asyncio``'s configuration loading or its exceptions: a call made
inside ``converted()`` raises one of

    KubeError                 status, reason, message; itself: an answer none of these names
    ├── NotFound              404
    ├── AlreadyExists         409 with reason AlreadyExists: create found the name taken
    ├── Conflict              409 otherwise: a resourceVersion or uid precondition failed
    ├── Invalid               400, 422: the request itself is wrong; the same one fails again
    ├── Forbidden             401, 403: RBAC refused it until someone changes the Role
    ├── WatchExpired          410: the resourceVersion or continue token is too old; list again
    └── Transient             429, 5xx, or no answer (network, timeout, no usable configuration):
                              retry later, after ``retry_after`` seconds when the server said so

The operator maps the tree to kopf's retries, the API to its error envelope, each in one place.
The worker never imports this module: its image runs no Kubernetes client.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException


class KubeError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message


class NotFound(KubeError):
    pass


class AlreadyExists(KubeError):
    pass


class Conflict(KubeError):
    """The object changed since it was read (resourceVersion precondition failed)."""


class Invalid(KubeError):
    """The request itself is wrong (422/400): permanent."""


class Forbidden(KubeError):
    """RBAC refused it: permanent until someone changes the Role."""


class WatchExpired(KubeError):
    """The resourceVersion (watch) or continue token (paged list) is too old: list again."""


class Transient(KubeError):
    """Network trouble, 5xx, 429: worth retrying after a delay."""

    def __init__(self, status: int, reason: str, message: str, retry_after: str | None = None) -> None:
        super().__init__(status, reason, message)
        self.retry_after = retry_after


def _error_for(status: int, reason: str, message: str, retry_after: str | None = None) -> KubeError:
    """The tree's class for an answer of the API server."""
    if status == 404:
        return NotFound(status, reason, message)
    if status == 409:
        return (AlreadyExists if reason == "AlreadyExists" else Conflict)(status, reason, message)
    if status in (400, 422):
        return Invalid(status, reason, message)
    if status in (401, 403):
        return Forbidden(status, reason, message)
    if status == 410:
        return WatchExpired(status, reason, message)
    if status == 429 or status >= 500:
        return Transient(status, reason, message, retry_after)
    return KubeError(status, reason, message)


def _from_api_exception(e: ApiException) -> KubeError:
    # The body is a Status object (reason and message) unless a proxy in between answered.
    try:
        body = json.loads(e.body or "{}")
    except (TypeError, ValueError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    headers: Mapping[str, str] = getattr(e, "headers", None) or {}
    retry_after = headers.get("Retry-After")
    return _error_for(
        e.status or 0,
        str(body.get("reason") or e.reason or ""),
        str(body.get("message") or ""),
        retry_after,
    )


@contextlib.contextmanager
def converted() -> Iterator[None]:
    """Around calls of the client: its exceptions leave as the tree's."""
    try:
        yield
    except ApiException as e:
        raise _from_api_exception(e) from None
    except (aiohttp.ClientError, TimeoutError, OSError, config.ConfigException) as e:
        raise Transient(0, type(e).__name__, str(e)) from None


async def connect(
    kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None
) -> client.ApiClient:
    """A ``kubernetes_asyncio`` ``ApiClient``, configured from the first of: the kubeconfig file
    given; the pod's service account, when running in a pod; the ``KUBECONFIG`` variable or
    ``~/.kube/config``. A file given is never passed over for the pod's account, so a process in a
    pod can be pointed elsewhere. No usable configuration raises Transient: a mounted file or token
    may still be on its way."""
    configuration = client.Configuration()
    with converted():
        if kubeconfig is None:
            try:
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            except config.ConfigException:
                pass  # not in a pod
            else:
                return _client(configuration)
        await config.load_kube_config(
            config_file=None if kubeconfig is None else os.fspath(kubeconfig),
            context=context,
            client_configuration=configuration,
        )
    return _client(configuration)


def _client(configuration: client.Configuration) -> client.ApiClient:
    """An ``ApiClient`` whose session does not read the environment at each request.

    ``kubernetes_asyncio`` makes its session with ``trust_env=True``, so every request hands two
    lookups to the default thread pool (a ``.netrc`` file read and the proxy variables): 7 % of the
    operator's CPU, and two thread hops on every call. Like kopf's own session (its
    ``networking.trust_env`` is off by default), the API server is reached directly or through the
    kubeconfig's ``proxy-url``, never through ``HTTPS_PROXY``/``.netrc``."""
    api = client.ApiClient(configuration)
    api.rest_client.pool_manager._trust_env = False  # no public setter; pinned by a unit test
    return api
