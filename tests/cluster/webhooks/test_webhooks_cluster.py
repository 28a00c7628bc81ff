"""Webhooks end to end on the local cluster: the real operator (subprocess, chart RBAC) runs real
extraction Jobs on generated media and delivers signed events to verifying receivers on 127.0.0.1;
delivery state is read back from the ExtractionBatch's status."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest

from audio_extract_api.app import create_app
from audio_extract_api.settings import Settings as ApiSettings
from audio_extract_common.batch_resource import API_VERSION, GROUP, KIND, PLURAL, VERSION
from audio_extract_dev.webhook_receiver import Receiver, Reply
from audio_extract_localcluster.host import HOST_IP
from support.media_server import MediaServer
from support.operator_process import OperatorProcess
from support.waiting import wait_for

pytestmark = pytest.mark.cluster

Start = Callable[..., OperatorProcess]


def create_batch(k8s_api: Any, namespace: str, name: str, jobs: list[dict[str, Any]], **spec: Any) -> None:
    body = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {"jobs": jobs, **spec},
    }
    kubernetes.client.CustomObjectsApi(k8s_api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )


def status_of(k8s_api: Any, namespace: str, name: str) -> dict[str, Any]:
    obj = kubernetes.client.CustomObjectsApi(k8s_api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return obj.get("status") or {}


def deliveries(status: dict[str, Any]) -> list[dict[str, Any] | None]:
    """Every delivery record of a finished batch: one per job, then the batch's."""
    return [j.get("webhook") for j in status.get("jobs") or []] + [status.get("webhook")]


def settled(k8s_api: Any, namespace: str, name: str, expected: int) -> Callable[[], dict[str, Any] | None]:
    """A predicate: the status once ``expected`` deliveries are recorded and none is pending."""

    def check() -> dict[str, Any] | None:
        st = status_of(k8s_api, namespace, name)
        records = [d for d in deliveries(st) if d]
        done = len(records) == expected and all(d["state"] != "pending" for d in records)
        return st if done else None

    return check


def api_get(cluster: Any, namespace: str, tmp_path: Path, path: str) -> dict[str, Any]:
    """GET through the real API app (in process) reading the same cluster, with an admin key (the
    batches are made without the API, so they carry no tenant label)."""
    key = "axk_webhooks-test-key"
    keys = tmp_path / "api-keys"
    keys.write_text(f"main {hashlib.sha256(key.encode()).hexdigest()} admin\n")
    settings = ApiSettings(
        namespace=namespace,
        kubeconfig=cluster.kubeconfig,
        api_keys_path=keys,
        store__root=tmp_path / "store",
        allow_cidrs=f"127.0.0.0/8,{HOST_IP}/32",
    )

    async def get() -> dict[str, Any]:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://api.test", headers={"X-API-Key": key}
            ) as client:
                response = await client.get(path)
                assert response.status_code == 200, response.text
                return response.json()["data"]

    return asyncio.run(get())


def job(url: str, fmt: str = "mp3", **options: Any) -> dict[str, Any]:
    return {"source": {"type": "url", "url": url}, "output": {"format": fmt}, "options": options}


def test_each_event_arrives_once_signed_and_recorded(
    namespace: str, media: MediaServer, k8s_api: Any, start_operator: Start, secret: str
) -> None:
    start_operator()
    with Receiver(secret) as batch_rx, Receiver(secret) as own_rx:
        create_batch(
            k8s_api,
            namespace,
            "mixed",
            [
                job(f"{media.url}/av.mp4", filename="first"),
                job(f"{media.url}/noaudio.mp4"),
                job(f"{media.url}/tone.wav", fmt="ogg", webhook=own_rx.url + "own"),
            ],
            webhook=batch_rx.url + "batch",
        )
        st = wait_for(settled(k8s_api, namespace, "mixed", 4), 120, "4 deliveries settled")
        time.sleep(1.0)  # anything extra would show up now
    got = batch_rx.received + own_rx.received
    assert all(r.verified for r in got), [r.headers for r in got if not r.verified]
    assert len(got) == len({r.id for r in got}) == 4  # each event exactly once
    by_event = {(r.payload["event"], r.payload.get("jobId")): r for r in got}
    jobs = st["jobs"]
    completed = by_event["job.completed", jobs[0]["jobId"]].payload
    assert completed == {
        "event": "job.completed",
        "jobId": jobs[0]["jobId"],
        "batchId": st["batchId"],
        "status": "completed",
        "timestamp": jobs[0]["completedAt"],
        "downloadUrl": f"/audio-extract/v1/download/{jobs[0]['jobId']}",
        "outputFile": {
            "filename": "first.mp3",
            "url": f"/audio-extract/v1/download/{jobs[0]['jobId']}",
            "size": jobs[0]["outputFile"]["size"],
            "duration": jobs[0]["outputFile"]["duration"],
            "format": "mp3",
            "bitrate": jobs[0]["outputFile"]["bitrate"],
            "sampleRate": 44100,
            "channels": 2,
        },  # av.mp4: 44.1 kHz stereo
    }
    failed = by_event["job.failed", jobs[1]["jobId"]].payload
    assert failed["status"] == "failed" and failed["error"]["code"] == "NO_AUDIO_STREAM"
    assert [r.path for r in own_rx.received] == ["/own"]
    assert own_rx.received[0].payload["jobId"] == jobs[2]["jobId"]
    batch = by_event["batch.completed", None].payload
    assert (batch["totalJobs"], batch["completed"], batch["failed"]) == (3, 2, 1)
    assert {r.path for r in batch_rx.received} == {"/batch"}
    for record in deliveries(st):
        assert record["state"] == "delivered" and record["attempts"] == 1 and record["lastStatusCode"] == 200
    assert {d["id"] for d in deliveries(st)} == {r.id for r in got}


def test_500_three_times_then_200_is_four_attempts_with_one_id(
    namespace: str, media: MediaServer, k8s_api: Any, start_operator: Start, secret: str
) -> None:
    start_operator(webhook__schedule=[1, 1, 1, 1, 1])
    with Receiver(secret, lambda _r, n: Reply(500 if n < 3 else 200)) as rx:
        create_batch(k8s_api, namespace, "flaky", [job(f"{media.url}/noaudio.mp4", webhook=rx.url)])
        st = wait_for(settled(k8s_api, namespace, "flaky", 1), 120, "delivery settled")
        time.sleep(1.5)
    [record] = [d for d in deliveries(st) if d]
    assert (record["state"], record["attempts"], record["lastStatusCode"]) == ("delivered", 4, 200)
    assert [r.id for r in rx.received] == [record["id"]] * 4
    assert all(r.verified for r in rx.received)
    stamps = [int(r.headers["webhook-timestamp"]) for r in rx.received]
    assert stamps == sorted(stamps) and stamps[-1] - stamps[0] >= 3  # waited ~1 s between attempts


def test_receiver_down_for_the_whole_schedule_ends_failed_without_further_attempts(
    cluster: Any,
    namespace: str,
    media: MediaServer,
    k8s_api: Any,
    start_operator: Start,
    secret: str,
    tmp_path: Path,
) -> None:
    start_operator(webhook__schedule=[1, 1, 1])
    with Receiver(secret, lambda _r, _n: Reply(503)) as rx:
        create_batch(k8s_api, namespace, "down", [job(f"{media.url}/noaudio.mp4")], webhook=rx.url)
        st = wait_for(settled(k8s_api, namespace, "down", 2), 120, "deliveries given up")
        time.sleep(3.0)  # a further attempt would have been due by now
        final = status_of(k8s_api, namespace, "down")
    for record in deliveries(st):
        assert (record["state"], record["attempts"], record["lastStatusCode"]) == ("failed", 4, 503)
        assert "nextAttemptAt" not in record
    assert deliveries(final) == deliveries(st)
    per_id = rx.by_id()
    assert sorted(len(v) for v in per_id.values()) == [4, 4]
    # visible through the API: GET /v1/status/{jobId} (job) and GET /v1/batch/{batchId} (batch)
    view = api_get(cluster, namespace, tmp_path, f"/v1/status/{st['jobs'][0]['jobId']}")
    assert view["status"] == "failed" and view["webhook"]["state"] == "failed"
    assert view["webhook"]["attempts"] == 4 and view["webhook"]["lastStatusCode"] == 503
    batch_view = api_get(cluster, namespace, tmp_path, f"/v1/batch/{st['batchId']}")
    assert batch_view["webhookDelivery"]["state"] == "failed"


def test_sigkill_between_sending_and_recording_resends_once_with_the_same_id(
    namespace: str, media: MediaServer, k8s_api: Any, start_operator: Start, secret: str, tmp_path: Path
) -> None:
    marker = tmp_path / "crashed"
    op = start_operator(crash_after_send=marker)
    with Receiver(secret) as rx:
        create_batch(k8s_api, namespace, "crashy", [job(f"{media.url}/noaudio.mp4")], webhook=rx.url)
        wait_for(lambda: not op.alive(), 120, "the operator to kill itself after the first send")
        assert marker.exists()
        sent_before = len(rx.received)
        assert sent_before >= 1
        assert not [d for d in deliveries(status_of(k8s_api, namespace, "crashy")) if d and d["attempts"]]
        op.start()
        st = wait_for(settled(k8s_api, namespace, "crashy", 2), 60, "deliveries after the restart")
        time.sleep(1.0)
    per_id = rx.by_id()
    assert set(per_id) == {d["id"] for d in deliveries(st)}
    assert all(1 <= len(v) <= 2 for v in per_id.values()), {k: len(v) for k, v in per_id.items()}
    assert any(len(v) == 2 for v in per_id.values())  # the lost record really caused a resend
    assert all(r.verified for r in rx.received)
    for record in deliveries(st):
        assert record["state"] == "delivered"


def test_blocked_target_is_never_contacted_and_recorded_failed(
    namespace: str, media: MediaServer, k8s_api: Any, start_operator: Start, secret: str
) -> None:
    start_operator(webhook__allow_cidrs="")  # loopback is not allowlisted for webhooks now
    with Receiver(secret) as rx:
        create_batch(
            k8s_api,
            namespace,
            "blocked",
            [job(f"{media.url}/noaudio.mp4")],
            webhook=f"http://localhost:{rx.port}/hook",
        )
        st = wait_for(settled(k8s_api, namespace, "blocked", 2), 120, "deliveries refused")
    assert rx.received == []
    for record in deliveries(st):
        assert (record["state"], record["attempts"]) == ("failed", 1)
        assert "not a public address" in record["lastError"]
