"""The operator's own status writes feed the webhook pump directly: against the real API server,
with no watch running at all, a job the StatusWriter records as ended has its webhook delivered
and the delivery recorded in status."""

from __future__ import annotations

import asyncio
from typing import Any

import kubernetes
import pytest

from audio_extract_common import ids
from audio_extract_common.batch_resource import API_VERSION, GROUP, KIND, PLURAL, VERSION
from audio_extract_common.batch_status import BatchStatus, JobStatus
from audio_extract_dev.webhook_receiver import Receiver
from audio_extract_operator.kube import Kube
from audio_extract_operator.registry import Registry
from audio_extract_operator.statuswriter import StatusWriter
from audio_extract_operator.webhooks.pump import Pump
from support.operator_settings import operator_settings
from support.waiting import wait_for

pytestmark = pytest.mark.cluster
KEY = "0123456789abcd"


def ended(body: dict[str, Any], status: BatchStatus) -> BatchStatus:
    job_id = ids.job_id(KEY, 0)
    status.jobs = [
        JobStatus(
            index=0,
            jobId=job_id,
            jobName=ids.job_object_name(job_id),
            status="completed",
            progress=100,
            completedAt="2026-01-21T12:00:00Z",
            outputFile={"filename": "a.mp3", "path": f"{job_id}/a.mp3", "size": 10, "format": "mp3"},
        )
    ]
    return status


async def test_a_status_write_is_delivered_without_a_watch(
    cluster: Any, namespace: str, crd: None, k8s_api: Any, secret: str
) -> None:
    name = ids.batch_object_name(KEY)
    custom = kubernetes.client.CustomObjectsApi(k8s_api)
    with Receiver(secret) as rx:
        custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "metadata": {"name": name},
                "spec": {
                    "webhook": rx.url + "hooks",
                    "jobs": [
                        {
                            "source": {"type": "url", "url": "https://m.example.com/v.mp4"},
                            "output": {"format": "mp3"},
                        }
                    ],
                },
            },
        )
        settings = operator_settings(
            webhook__secret=secret, webhook__allow_cidrs="127.0.0.1/32", webhook__jitter=0.0
        )
        kube = await Kube.connect(str(cluster.kubeconfig))

        async def patch(ns: str, n: str, ops: list[dict[str, Any]]) -> Any:
            return await kube.call(
                "PATCH",
                f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}/{n}/status",
                ops,
                content_type="application/json-patch+json",
            )

        registry = Registry()
        writer = StatusWriter(kube, settings, registry)
        pump = Pump(settings.webhook, patch)
        writer.listeners.append(pump.observe)

        def recorded() -> dict[str, Any] | None:
            obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            st = obj.get("status") or {}
            hooks = [j.get("webhook") for j in st.get("jobs") or []] + [st.get("webhook")]
            return st if all(h and h["state"] != "pending" for h in hooks) else None

        loop = asyncio.create_task(pump.run())
        try:
            await writer.update(namespace, name, ended)
            got = await asyncio.to_thread(rx.wait_for, lambda rs: len(rs) >= 2, 20)
            status = await asyncio.to_thread(wait_for, recorded, 20, "deliveries recorded in status")
        finally:
            loop.cancel()
            await pump.aclose()
            await kube.close()
    assert got, f"received {[r.payload for r in rx.received]}"
    events = sorted(r.payload["event"] for r in rx.received)
    assert events == ["batch.completed", "job.completed"] and all(r.verified for r in rx.received)
    assert status["jobs"][0]["webhook"]["state"] == status["webhook"]["state"] == "delivered"
