"""The chart-installed system through its public surfaces: the contract's example batches via
the API with downloads checked by ffprobe, a sample manifest applied with kubectl, signed webhooks
received on this machine, uploads and cancel."""

from __future__ import annotations

from pathlib import Path

import pytest
import standardwebhooks
import yaml
from system import REPO, Receiver, System, ffprobe_bytes

from support.media_server import MediaServer
from support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

CODECS = {"mp3": "mp3", "flac": "flac", "aac": "aac"}
MEDIA_TYPES = {"mp3": "audio/mpeg", "flac": "audio/flac", "aac": "audio/aac"}


def submit(system: System, jobs: list[dict], **batch: object) -> list[str]:
    reply = system.api.post("/v1/batch", json={"jobs": jobs, **batch})
    assert reply.status_code == 202, reply.text
    return [j["jobId"] for j in reply.json()["data"]["jobs"]]


def test_contract_example_batches_complete_and_download(
    system: System, media: MediaServer, tmp_path: Path
) -> None:
    src = {"type": "url", "url": f"{media.url}/av.mp4"}
    outputs = [
        {"format": "mp3", "quality": "high"},
        {"format": "flac", "normalize": True},
        {"format": "mp3", "quality": "medium"},
        {"format": "aac", "bitrate": "256k"},
    ]
    jobs = submit(system, [{"source": src, "output": o} for o in outputs[:2]])
    jobs += submit(system, [{"source": src, "output": o} for o in outputs[2:]])
    final = system.follow(jobs)
    for job, output in zip(jobs, outputs, strict=True):
        assert final[job]["status"] == "completed", final[job]
        reply = system.api.get(f"/v1/download/{job}")
        assert reply.status_code == 200, reply.text
        fmt = output["format"]
        assert reply.headers["content-type"] == MEDIA_TYPES[fmt]
        assert int(reply.headers["content-length"]) == len(reply.content) == final[job]["outputFile"]["size"]
        probed = ffprobe_bytes(reply.content, tmp_path / f"{job}.{fmt}")
        (stream,) = probed["streams"]
        assert stream["codec_name"] == CODECS[fmt]
        assert abs(float(probed["format"]["duration"]) - 1.0) < 0.2


def test_a_sample_manifest_applied_with_kubectl_completes(system: System, media: MediaServer) -> None:
    text = (REPO / "crds" / "samples" / "batch-mp3-aac.yaml").read_text()
    text = text.replace("http://host.audio-extract.internal:8080/videos", media.url)
    assert media.url in text
    system.kubectl("apply", "-f", "-", input=text)
    name = yaml.safe_load(text)["metadata"]["name"]
    system.kubectl("wait", "--for=condition=Complete", "--timeout=120s", f"extractionbatch/{name}")
    status = system.get_json("extractionbatch", name)["status"]
    assert [j["status"] for j in status["jobs"]] == ["completed", "completed"]
    assert status["jobs"][1]["outputFile"]["filename"] == "interview.aac"


def test_webhooks_are_signed_with_the_release_secret(
    system: System, media: MediaServer, receiver: Receiver
) -> None:
    good = {"source": {"type": "url", "url": f"{media.url}/av.mp4"}, "output": {"format": "mp3"}}
    silent = {"source": {"type": "url", "url": f"{media.url}/noaudio.mp4"}, "output": {"format": "mp3"}}
    jobs = submit(system, [good, silent], webhook=receiver.url)
    receiver.wait(3)  # one event per job, then batch.completed (the batch-level webhook)
    verifier = standardwebhooks.Webhook(system.keys.webhook_secret)
    events = [verifier.verify(body, headers) for headers, body in receiver.calls]  # raises if forged
    assert len(events) == 3
    by_job = {e["jobId"]: e for e in events if e["event"].startswith("job.")}
    assert by_job[jobs[0]]["event"] == "job.completed"
    assert by_job[jobs[1]]["event"] == "job.failed"
    assert by_job[jobs[1]]["error"]["code"] == "NO_AUDIO_STREAM"
    assert sorted(e["event"] for e in events) == ["batch.completed", "job.completed", "job.failed"]
    assert len({headers["webhook-id"] for headers, _ in receiver.calls}) == 3
    forged = standardwebhooks.Webhook("whsec_" + "A" * 44)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        forged.verify(*reversed(receiver.calls[0]))


def test_an_upload_is_a_source(system: System, media: MediaServer, tmp_path: Path) -> None:
    data = (media.directory / "av.mp4").read_bytes()
    reply = system.api.post("/v1/uploads", content=data, headers={"Content-Type": "application/octet-stream"})
    assert reply.status_code == 201, reply.text
    upload = reply.json()["data"]
    assert upload["size"] == len(data)
    (job,) = submit(
        system, [{"source": {"type": "upload", "file": upload["fileId"]}, "output": {"format": "flac"}}]
    )
    assert system.follow([job])[job]["status"] == "completed"
    probed = ffprobe_bytes(system.api.get(f"/v1/download/{job}").content, tmp_path / "up.flac")
    assert probed["streams"][0]["codec_name"] == "flac"


def test_cancel_stops_running_work_at_once(system: System, media: MediaServer) -> None:
    slow = {"source": {"type": "url", "url": f"{media.url}/slow/av.mp4"}, "output": {"format": "mp3"}}
    reply = system.api.post("/v1/batch", json={"jobs": [slow, slow]})
    batch = reply.json()["data"]["batchId"]
    jobs = [j["jobId"] for j in reply.json()["data"]["jobs"]]
    wait_for(
        lambda: system.api.get(f"/v1/status/{jobs[0]}").json()["data"]["status"] == "processing",
        60,
        "the first job running",
    )
    assert system.api.post(f"/v1/batch/{batch}/cancel").status_code in (200, 202)
    final = system.follow(jobs, timeout=30)
    assert {(f["status"], f["error"]["code"]) for f in final.values()} == {("cancelled", "CANCELLED")}
    selector = f"audioextract.io/job-id in ({','.join(jobs)})"

    def pods() -> list[dict]:
        return system.get_json("pods", "-l", selector)["items"]

    # the Jobs are gone; the garbage collector deletes their pods next (it can lag on a busy machine)
    wait_for(lambda: all(p["metadata"].get("deletionTimestamp") for p in pods()), 60, "the pods deleted")
    # then they go well within the 30 s grace period: tini passes the kubelet's SIGTERM on and the
    # worker stops at once (a worker that ignored it would live the whole grace period)
    wait_for(lambda: not pods(), 25, "the cancelled workers' pods gone")
    assert system.api.get(f"/v1/download/{jobs[0]}").status_code == 409


def test_another_tenants_key_gets_404_on_every_route(system: System, media: MediaServer) -> None:
    """docs/contract.md §7: the second development key (`AUDIO_EXTRACT_API_KEY_OTHER`, another tenant) sees
    the first tenant's job and batch exactly as it sees ones that do not exist, and cannot use its
    uploads; the first tenant's key goes on seeing both."""
    src = {"type": "url", "url": f"{media.url}/av.mp4"}
    reply = system.api.post("/v1/batch", json={"jobs": [{"source": src, "output": {"format": "mp3"}}]})
    assert reply.status_code == 202, reply.text
    batch, job = reply.json()["data"]["batchId"], reply.json()["data"]["jobs"][0]["jobId"]
    assert system.follow([job])[job]["status"] == "completed"  # a real output behind the download

    def routes(job_id: str, batch_id: str) -> list[tuple[str, str]]:
        return [
            ("GET", f"/v1/status/{job_id}"),
            ("GET", f"/v1/batch/{batch_id}"),
            ("GET", f"/v1/download/{job_id}"),
            ("POST", f"/v1/jobs/{job_id}/cancel"),
            ("POST", f"/v1/batch/{batch_id}/cancel"),
            ("GET", f"/audio-extract/v1/status/{job_id}"),
        ]

    other = {"X-API-Key": system.keys.other_api_key}
    missing = routes("job_0123456789abcd01", "batch_0123456789abcd00")
    for (method, path), (_, nowhere) in zip(routes(job, batch), missing, strict=True):
        theirs = system.api.request(method, path, headers=other)
        nothing = system.api.request(method, nowhere, headers=other)
        assert theirs.status_code == 404, (path, theirs.text)
        assert theirs.json() == nothing.json()
        assert theirs.json()["error"]["code"] == "JOB_NOT_FOUND"
    assert system.api.get(f"/v1/batch/{batch}").json()["data"]["cancelRequested"] is False
    download = system.api.get(f"/v1/download/{job}")
    assert download.status_code == 200 and download.headers["content-type"] == "audio/mpeg"
    # an upload is its tenant's too
    upload = system.api.post(
        "/v1/uploads",
        content=(media.directory / "av.mp4").read_bytes(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert upload.status_code == 201, upload.text
    named = {
        "jobs": [
            {
                "source": {"type": "upload", "file": upload.json()["data"]["fileId"]},
                "output": {"format": "mp3"},
            }
        ]
    }
    refused = system.api.post("/v1/batch", json=named, headers=other)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "INVALID_SOURCE", refused.text
