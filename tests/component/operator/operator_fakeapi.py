"""An in-memory stand-in for the API server behind ``Kube.call``, for component tests of the
operator's reconcile, resync and retention code.

Only the transport is fake: the operator's own ``Kube`` methods (paths, merge patches,
preconditions, ``limit``/``continue`` paging) run unchanged on top of it. It keeps what the
operator's calls rely on: resourceVersions (a Conflict on a stale precondition), uid
preconditions, label selectors, paged lists whose pages share the first page's resourceVersion,
the garbage collector deleting a batch's Jobs (background propagation), and the watch cache
that lists with ``resourceVersion=0`` are served from, which can be made to lag (``cache_rv``).

    api = FakeApi()
    body = api.add_batch("b1", jobs=2)
    ... Reconciler(api, settings, registry, StatusWriter(api, settings, registry)) ...
    gone = api.delete_by_hand("jobs", "ns", "job-...")   # the final body a DELETED event carries
"""

from __future__ import annotations

import copy
import itertools
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from audio_extract_common import ids
from audio_extract_common.batch_resource import API_VERSION, KIND
from audio_extract_common.kube import AlreadyExists, Conflict, KubeError, NotFound
from audio_extract_common.results import WorkerResult
from audio_extract_operator.jobs import CONTAINER
from audio_extract_operator.kube import Kube

NS = "ns"
JOB = {"source": {"type": "url", "url": "http://example.org/a.mp4"}, "output": {"format": "wav"}}

_PATHS = [
    (
        "extractionbatches",
        re.compile(
            r"^/apis/audioextract\.io/v1(?:/namespaces/(?P<ns>[^/]+))?/extractionbatches"
            r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>status))?$"
        ),
    ),
    ("jobs", re.compile(r"^/apis/batch/v1(?:/namespaces/(?P<ns>[^/]+))?/jobs(?:/(?P<name>[^/]+))?$")),
    ("pods", re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods$")),
    ("events", re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/events$")),
]


def merge(target: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch."""
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, Mapping) and isinstance(target.get(k), dict):
            merge(target[k], v)
        else:
            target[k] = copy.deepcopy(v)
    return target


def _selected(obj: Mapping[str, Any], selector: str) -> bool:
    labels = obj["metadata"].get("labels") or {}
    for term in filter(None, selector.split(",")):
        k, _, v = term.partition("=")
        if labels.get(k) != v:
            return False
    return True


class FakeApi(Kube):
    def __init__(self) -> None:
        super().__init__(None)  # type: ignore[arg-type]  # no client: call() is replaced
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self.fail: Callable[[str, str, dict[str, str]], KubeError | None] | None = None
        """Called before each request; an error it returns is raised instead of answering."""
        self._rv = itertools.count(100)
        self.rv = 100
        self.cache_rv: int | None = None
        """Where the API server's watch cache is, if behind: a list with ``resourceVersion=0``
        (served from that cache) leaves out every object written after it."""

    # --- test helpers -------------------------------------------------------------------------

    def _next_rv(self) -> str:
        self.rv = next(self._rv)
        return str(self.rv)

    def add_batch(self, name: str, jobs: int = 1, namespace: str = NS, **spec: Any) -> dict[str, Any]:
        body = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "generation": 1,
                "creationTimestamp": "2026-01-21T12:00:00Z",
                "resourceVersion": self._next_rv(),
            },
            "spec": {"jobs": [JOB] * jobs, **spec},
        }
        self.objects[("extractionbatches", namespace, name)] = body
        return copy.deepcopy(body)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get((kind, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def names(self, kind: str, namespace: str = NS) -> list[str]:
        return sorted(n for k, ns, n in self.objects if k == kind and ns == namespace)

    def edit(self, kind: str, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A change made by someone else (kubectl, a controller): merged, with a new resourceVersion."""
        obj = self.objects[(kind, namespace, name)]
        merge(obj, patch)
        obj["metadata"]["resourceVersion"] = self._next_rv()
        return copy.deepcopy(obj)

    def delete_by_hand(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """``kubectl delete`` (or the TTL controller): returns the final body a DELETED event carries."""
        obj = self.objects.pop((kind, namespace, name))
        obj["metadata"]["resourceVersion"] = self._next_rv()
        return obj

    def finish_job(
        self, namespace: str, name: str, condition: str, result: WorkerResult | None, reason: str = ""
    ) -> dict[str, Any]:
        """What the Job controller and the kubelet leave once the worker ended: the condition on the
        Job and a pod whose termination message holds the worker's result."""
        job = self.objects[("jobs", namespace, name)]
        terminated: dict[str, Any] = {
            "exitCode": 0 if condition == "Complete" else 1,
            "finishedAt": "2026-01-21T12:00:09Z",
        }
        if result is not None:
            terminated["message"] = result.to_message()
        pod_name = f"{name}-pod"
        self.objects[("pods", namespace, pod_name)] = {
            "metadata": {
                "name": pod_name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "labels": dict(job["spec"]["template"]["metadata"]["labels"]),
                "creationTimestamp": "2026-01-21T12:00:01Z",
                "resourceVersion": self._next_rv(),
            },
            "status": {"containerStatuses": [{"name": CONTAINER, "state": {"terminated": terminated}}]},
        }
        return self.edit(
            "jobs",
            namespace,
            name,
            {
                "status": {
                    "startTime": "2026-01-21T12:00:02Z",
                    "conditions": [{"type": condition, "status": "True", "reason": reason}],
                }
            },
        )

    def lists(self, kind: str) -> list[dict[str, str]]:
        """The query of every list request made for ``kind``."""
        return [
            q
            for method, path, q in self.calls
            if method == "GET" and self._route(path)[0] == kind and not self._route(path)[1]["name"]
        ]

    # --- the API ------------------------------------------------------------------------------

    def _route(self, path: str) -> tuple[str, dict[str, Any]]:
        for kind, pattern in _PATHS:
            if m := pattern.match(path):
                return kind, {"ns": None, "name": None, "sub": None, **m.groupdict()}
        raise AssertionError(f"the fake API does not serve {path}")

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        q = dict(query or {})
        self.calls.append((method, path, q))
        if self.fail is not None and (error := self.fail(method, path, q)) is not None:
            raise error
        kind, where = self._route(path)
        ns, name = where["ns"], where["name"]
        if method == "GET" and name is None:
            return self._list(kind, ns, q)
        if method == "POST":
            return self._create(kind, ns, body)
        key = (kind, ns, name)
        if key not in self.objects:
            raise NotFound(404, "NotFound", f"{kind} {name} not found")
        obj = self.objects[key]
        if method == "GET":
            return copy.deepcopy(obj)
        if method == "PATCH":
            return self._patch(obj, body, status=where["sub"] == "status")
        if method == "DELETE":
            uid = ((body or {}).get("preconditions") or {}).get("uid")
            if uid and uid != obj["metadata"]["uid"]:
                raise Conflict(409, "Conflict", "uid precondition failed")
            del self.objects[key]
            if kind == "extractionbatches":
                self._collect_garbage(obj["metadata"]["uid"])
            return {"kind": "Status", "status": "Success"}
        raise AssertionError(f"the fake API does not serve {method} {path}")

    def _list(self, kind: str, ns: str | None, q: dict[str, str]) -> dict[str, Any]:
        # Like etcd, a continue token resumes after the last key returned (objects deleted
        # meanwhile do not shift the pages) and carries the first page's resourceVersion.
        after, rv = ("", ""), str(self.rv)
        if q.get("continue"):
            after_ns, after_name, rv = q["continue"].split("/")
            after = (after_ns, after_name)
        items = [
            (n, name, o)
            for (k, n, name), o in sorted(self.objects.items())
            if k == kind
            and (ns is None or n == ns)
            and (n, name) > after
            and _selected(o, q.get("labelSelector", ""))
            and not (
                q.get("resourceVersion") == "0"
                and self.cache_rv is not None
                and int(o["metadata"]["resourceVersion"]) > self.cache_rv
            )
        ]
        limit = int(q["limit"]) if q.get("limit") else len(items)
        page, more = items[:limit], len(items) > limit
        token = f"{page[-1][0]}/{page[-1][1]}/{rv}" if more else ""
        return {
            "metadata": {"resourceVersion": rv, "continue": token},
            "items": copy.deepcopy([o for _, _, o in page]),
        }

    def _create(self, kind: str, ns: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if kind == "events":
            self.events.append(copy.deepcopy(dict(body)))
            return copy.deepcopy(dict(body))
        obj = copy.deepcopy(dict(body))
        key = (kind, ns, obj["metadata"]["name"])
        if key in self.objects:
            raise AlreadyExists(409, "AlreadyExists", f"{key[2]} already exists")
        obj["metadata"].update(
            uid=str(uuid.uuid4()), resourceVersion=self._next_rv(), creationTimestamp="2026-01-21T12:00:01Z"
        )
        obj.setdefault("status", {})
        self.objects[key] = obj
        return copy.deepcopy(obj)

    def _patch(self, obj: dict[str, Any], patch: Mapping[str, Any], status: bool) -> dict[str, Any]:
        meta = patch.get("metadata") or {}
        if meta.get("resourceVersion") and meta["resourceVersion"] != obj["metadata"]["resourceVersion"]:
            raise Conflict(409, "Conflict", "the object has been modified")
        if meta.get("uid") and meta["uid"] != obj["metadata"]["uid"]:
            raise Conflict(409, "Conflict", "uid precondition failed")
        if status:
            merge(obj.setdefault("status", {}), patch.get("status") or {})
        else:
            merge(obj, {k: v for k, v in patch.items() if k not in ("status", "metadata")})
            merge(obj["metadata"], {k: v for k, v in meta.items() if k in ("labels", "annotations")})
        obj["metadata"]["resourceVersion"] = self._next_rv()
        return copy.deepcopy(obj)

    def _collect_garbage(self, owner_uid: str) -> None:
        owned = [
            k
            for k, o in self.objects.items()
            if any(r.get("uid") == owner_uid for r in o["metadata"].get("ownerReferences") or [])
        ]
        for key in owned:
            del self.objects[key]


def job_name(body: Mapping[str, Any], index: int) -> str:
    meta = body["metadata"]
    return ids.job_object_name(ids.job_id(ids.batch_key(meta["name"], meta["uid"]), index))


def terminal_status(key: str, jobs: int = 10) -> dict[str, Any]:
    """A finished batch's status as the operator leaves it: outputs, webhook deliveries, conditions."""
    entries = []
    for i in range(jobs):
        job_id = ids.job_id(key, i)
        entries.append(
            {
                "index": i,
                "jobId": job_id,
                "jobName": ids.job_object_name(job_id),
                "status": "completed",
                "progress": 100,
                "createdAt": "2026-01-21T12:00:00Z",
                "startedAt": "2026-01-21T12:00:01Z",
                "completedAt": "2026-01-21T12:00:09Z",
                "expiresAt": "2026-01-22T12:00:09Z",
                "inputFile": {"name": "talk.mp4", "size": 123456, "duration": 61.5, "format": "mov,mp4"},
                "outputFile": {
                    "filename": "talk.mp3",
                    "path": f"{job_id}/talk.mp3",
                    "size": 98765,
                    "duration": 61.5,
                    "format": "mp3",
                    "bitrate": "192k",
                },
                "webhook": {
                    "event": "job.completed",
                    "url": "https://hooks.example.org/x",
                    "id": f"msg_{job_id}",
                    "timestamp": "2026-01-21T12:00:09Z",
                    "state": "delivered",
                    "attempts": 1,
                    "lastStatusCode": 200,
                    "deliveredAt": "2026-01-21T12:00:10Z",
                },
            }
        )
    return {
        "batchId": ids.batch_id(key),
        "phase": "Succeeded",
        "total": jobs,
        "completed": jobs,
        "jobs": entries,
        "completedAt": "2026-01-21T12:00:09Z",
        "conditions": [
            {
                "type": t,
                "status": "True",
                "reason": "AllJobsFinished",
                "message": "",
                "lastTransitionTime": "2026-01-21T12:00:09Z",
            }
            for t in ("Accepted", "Complete")
        ],
    }
