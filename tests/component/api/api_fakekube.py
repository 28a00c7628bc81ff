"""An in-memory stand-in for the API's ``Kube`` (ExtractionBatch objects in one namespace), for
component tests of what the API decides from the objects it reads: tenant isolation, idempotency,
cancel. It keeps what those decisions rely on: name uniqueness (AlreadyExists), resourceVersion
preconditions on merge patches (Conflict), label selectors, and a uid per object.

    fake = FakeKube()
    fake.install(app)                       # the app's Kube and its queue view's Kube
    fake.add("hand-made", labels={...})     # a batch applied with kubectl
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import FastAPI

from audio_extract_common import ids
from audio_extract_common.batch_resource import API_VERSION, KIND
from audio_extract_common.kube import AlreadyExists, Conflict

JOB = {"source": {"type": "url", "url": "http://example.org/a.mp4"}, "output": {"format": "mp3"}}


def _merge(target: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch."""
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, Mapping) and isinstance(target.get(k), dict):
            _merge(target[k], v)
        else:
            target[k] = copy.deepcopy(v)
    return target


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.asked: list[str] = []
        """The lookups asked for, in order (``get``, ``find_by_key``)."""
        self._rv = itertools.count(100)

    def install(self, app: FastAPI) -> FakeKube:
        svc = app.state.services
        svc.kube = svc.queue.kube = self
        return self

    def add(self, name: str, jobs: int = 1, labels: dict[str, str] | None = None) -> dict[str, Any]:
        """A batch created with kubectl (the operator has labelled it with its key)."""
        uid = str(uuid.uuid4())
        key = ids.batch_key(name, uid)
        obj = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": name, "uid": uid, "labels": {ids.KEY_LABEL: key, **(labels or {})}},
            "spec": {"jobs": [JOB] * jobs},
        }
        return self._store(obj)

    def _store(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"].setdefault("uid", str(uuid.uuid4()))
        obj["metadata"].setdefault("creationTimestamp", "2026-01-21T12:00:00Z")
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects[obj["metadata"]["name"]] = obj
        return copy.deepcopy(obj)

    # --- what the API's Kube offers ------------------------------------------------------------

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        if body["metadata"]["name"] in self.objects:
            raise AlreadyExists(409, "AlreadyExists", f"{body['metadata']['name']} already exists")
        return self._store(copy.deepcopy(body))

    async def get(self, name: str) -> dict[str, Any] | None:
        self.asked.append("get")
        obj = self.objects.get(name)
        return copy.deepcopy(obj) if obj else None

    async def find_by_key(self, key: str) -> dict[str, Any] | None:
        self.asked.append("find_by_key")
        for obj in self.objects.values():
            if (obj["metadata"].get("labels") or {}).get(ids.KEY_LABEL) == key:
                return copy.deepcopy(obj)
        return None

    async def patch(self, name: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        obj = self.objects.get(name)
        if obj is None:
            return None
        want = (patch.get("metadata") or {}).get("resourceVersion")
        if want is not None and want != obj["metadata"]["resourceVersion"]:
            raise Conflict(409, "Conflict", "the object has been modified")
        _merge(obj, patch)
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        return copy.deepcopy(obj)

    async def list(self) -> tuple[list[dict[str, Any]], str]:
        return [copy.deepcopy(o) for o in self.objects.values()], str(next(self._rv))

    async def watch(self, resource_version: str, timeout_seconds: int = 300) -> AsyncIterator[dict[str, Any]]:
        # No events: the queue view counts what it listed plus its own reservations.
        await asyncio.Event().wait()
        yield {}

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
