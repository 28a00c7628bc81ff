"""The largest valid batch (``largest_batch``: every limit of the models at its widest, ~1 MiB per
watch event before the server's managedFields) through the real API server: the operator's watch
(kopf) sees it and every job runs to its end, and the API's own watch (``Kube.watch``) reads the
event whole, with the status the operator wrote."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import kubernetes
import pytest

from audio_extract_api.kube import Kube
from audio_extract_api.settings import Settings
from audio_extract_common import ids
from audio_extract_common.batch_resource import API_VERSION, GROUP, KIND, PLURAL, VERSION
from support.largest_batch import largest_spec
from support.media_server import MediaServer
from support.operator_process import OperatorProcess
from support.waiting import wait_for

pytestmark = pytest.mark.cluster

NAME = "largest"


def test_the_largest_valid_batch_is_watched_processed_and_read_back_whole(
    cluster: Any,
    namespace: str,
    media: MediaServer,
    k8s_api: Any,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    op = start_operator(admission__max_running=4)
    spec = largest_spec(source_prefix=f"{media.url}/av.mp4", webhook_prefix=f"{media.url}/hook")
    del spec["cancelJobs"]  # 30 bytes of the line, and it would cancel every job
    body = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": NAME, "labels": {ids.TENANT_LABEL: "t" * 63}},
        "spec": spec,
    }
    api = kubernetes.client.CustomObjectsApi(k8s_api)
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

    def done() -> dict[str, Any] | None:
        batch = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, NAME)
        jobs = (batch.get("status") or {}).get("jobs") or []
        return batch if len(jobs) == len(spec["jobs"]) and batch["status"].get("completedAt") else None

    try:
        batch = wait_for(done, 600, "every job of the largest batch to end")
    except AssertionError:
        print(op.log_tail(200))
        raise
    states = [j["status"] for j in batch["status"]["jobs"]]
    assert states == ["completed"] * len(spec["jobs"]), batch["status"]
    log = op.log_path.read_text(errors="replace")
    assert "LineTooLong" not in log and "Chunk too big" not in log

    async def read_back() -> dict[str, Any]:
        kube = Kube(Settings(kubeconfig=cluster.kubeconfig, namespace=namespace))
        try:
            async for event in kube.watch("0", timeout_seconds=10):
                if event["object"]["metadata"]["name"] == NAME:
                    return event["object"]
        finally:
            await kube.close()
        raise AssertionError("the API's watch never showed the batch")

    seen = asyncio.run(read_back())
    assert seen["spec"] == spec and seen["status"]["completedAt"] == batch["status"]["completedAt"]
