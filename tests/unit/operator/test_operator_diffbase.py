"""The operator's diff base storage builds the very essence kopf's own builds for a batch (so what
kopf stored before compares equal, and a spec change is still one), without copying what kopf
drops; and none for a Job, whose essence kopf never compares."""

from __future__ import annotations

import copy
import json
from typing import Any

import kopf
import pytest

from audio_extract_common.batch_resource import API_VERSION, GROUP, KIND
from audio_extract_common.batch_spec import BatchSpec
from audio_extract_common.batch_status import BatchStatus
from audio_extract_operator import handlers
from audio_extract_operator.diffbase import DiffBaseStorage
from audio_extract_operator.jobs import build_job
from audio_extract_operator.reconcile import initial_entries
from audio_extract_operator.settings import Settings

PREFIX = "audioextract.io"
JOB = {"source": {"type": "url", "url": "http://example.org/a.mp4"}, "output": {"format": "mp3"}}
MANAGED = [
    {"manager": m, "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:jobs": {}}}}
    for m in ("kopf", "audio-extract-api", "kube-controller-manager")
]


def batch() -> dict[str, Any]:
    b: dict[str, Any] = {
        "apiVersion": "audioextract.io/v1",
        "kind": "ExtractionBatch",
        "metadata": {
            "name": "batch-0123456789abcd00",
            "namespace": "ns",
            "uid": "11111111-2222-3333-4444-555555555555",
            "resourceVersion": "42",
            "generation": 3,
            "creationTimestamp": "2026-01-21T12:00:00Z",
            "labels": {"audioextract.io/tenant": "acme"},
            "annotations": {
                f"{PREFIX}/last-handled-configuration": json.dumps({"spec": {"jobs": [JOB]}}),
                f"{PREFIX}/reconcile_batch": json.dumps({"started": "2026-01-21T12:00:00Z"}),
                "kopf.zalando.org/last-handled-configuration": "{}",
                "team": "audio",
            },
            "finalizers": [f"{PREFIX}/operator"],
            "managedFields": MANAGED,
        },
        "spec": {"jobs": [JOB] * 10, "cancelJobs": [3]},
    }
    status = initial_entries(b, BatchSpec.model_validate(b["spec"]), BatchStatus())
    assert status is not None
    b["status"] = status.model_dump(mode="json", exclude_none=True)
    return b


def job() -> dict[str, Any]:
    j = build_job(batch(), 0, Settings())
    j["metadata"].update(uid="uid-0", resourceVersion="43", managedFields=MANAGED)
    j["status"] = {"active": 1, "startTime": "2026-01-21T12:00:01Z", "ready": 1}
    return j


def storage() -> DiffBaseStorage:
    return DiffBaseStorage(prefix=PREFIX, compared=[(API_VERSION, KIND)])


@pytest.mark.parametrize("extra", [[], [("spec",)], [("status", "phase")], ["metadata.name"]])
def test_a_batchs_essence_is_kopfs(extra: list[Any]) -> None:
    body = batch()
    before = copy.deepcopy(body)
    ours = storage().build(body=kopf.Body(body), extra_fields=extra)
    kopfs = kopf.AnnotationsDiffBaseStorage(prefix=PREFIX).build(body=kopf.Body(body), extra_fields=extra)
    assert ours == kopfs and ours["spec"] == body["spec"]
    assert body == before  # the body is not touched


def test_a_spec_change_still_shows_and_a_status_change_does_not() -> None:
    body = batch()
    base = storage().build(body=kopf.Body(body))
    body["status"]["jobs"][0]["status"] = "processing"
    body["metadata"]["managedFields"] = MANAGED[:1]
    assert storage().build(body=kopf.Body(body)) == base
    body["spec"]["cancelJobs"] = [3, 4]
    assert storage().build(body=kopf.Body(body)) != base


def test_a_job_gets_no_essence_and_only_batches_have_handlers_that_compare_one() -> None:
    assert storage().build(body=kopf.Body(job()), extra_fields=[("spec",)]) == {}
    # The empty essence is right only while no create/update/resume/delete handler watches Jobs.
    changing = kopf.get_default_registry()._changing.get_all_handlers()
    assert handlers.reconcile_batch and changing
    assert {(h.selector.group, h.selector.version) for h in changing if h.selector} == {(GROUP, "v1")}
