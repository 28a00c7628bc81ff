"""The S3 store through the installed release (SeaweedFS, the local cluster's store): outputs land
in the release's bucket prefix; downloads stream with Range and redirect to a presigned URL;
`outputFile.url` is an absolute presigned URL; a direct upload goes straight to the store and is a
source; a worker pod holds no credential, no store volume and only its own objects' URLs."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from system import System, ffprobe_bytes

from support.media_server import MediaServer

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

STORE = "s3"


def one_job(system: System, job: dict) -> tuple[str, dict]:
    reply = system.api.post("/v1/batch", json={"jobs": [job]})
    assert reply.status_code == 202, reply.text
    (job_id,) = [j["jobId"] for j in reply.json()["data"]["jobs"]]
    status = system.follow([job_id])[job_id]
    assert status["status"] == "completed", status
    return job_id, status


def test_an_output_lands_in_the_bucket_and_downloads_stream_and_redirect(
    system: System, media: MediaServer, tmp_path: Path
) -> None:
    job = {
        "source": {"type": "url", "url": f"{media.url}/av.mp4"},
        "output": {"format": "mp3"},
        "options": {"filename": "talk"},
    }
    job_id, status = one_job(system, job)
    assert system.stored(f"{job_id}/") == [f"{job_id}/audio.mp3"]

    whole = system.api.get(f"/v1/download/{job_id}")
    assert whole.status_code == 200
    assert "talk.mp3" in whole.headers["content-disposition"]
    assert ffprobe_bytes(whole.content, tmp_path / "out.mp3")["format"]["format_name"] == "mp3"
    part = system.api.get(f"/v1/download/{job_id}", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == whole.content[100:200]

    redirect = system.api.get(f"/v1/download/{job_id}", params={"redirect": "true"})
    assert redirect.status_code == 307
    location = redirect.headers["location"]
    assert location.startswith(system.cluster.s3.endpoint_url)  # type: ignore[union-attr]
    direct = httpx.get(location)  # no API key: the URL is the credential
    assert direct.status_code == 200 and direct.content == whole.content
    assert "talk.mp3" in direct.headers["content-disposition"]

    url = status["outputFile"]["url"]
    assert url.startswith("http://") and "X-Amz-Signature=" in url
    assert httpx.get(url).content == whole.content


def test_a_direct_upload_goes_to_the_store_and_is_a_source(
    system: System, media: MediaServer, tmp_path: Path
) -> None:
    video = httpx.get(f"{media.url}/av.mp4").content
    ticket = system.api.post(
        "/v1/uploads", json={"filename": "av.mp4", "size": len(video), "contentType": "video/mp4"}
    )
    assert ticket.status_code == 201, ticket.text
    data = ticket.json()["data"]
    source = {"source": {"type": "upload", "file": data["fileId"]}, "output": {"format": "flac"}}
    early = system.api.post("/v1/batch", json={"jobs": [source]})
    assert early.status_code == 400 and early.json()["error"]["code"] == "INVALID_SOURCE", early.text

    put = httpx.request(data["method"], data["uploadUrl"], headers=data["headers"], content=video)
    assert put.status_code == 200, put.text
    assert system.stored(f"uploads/{data['fileId']}") == [f"uploads/{data['fileId']}"]

    job_id, _ = one_job(system, source)
    flac = system.api.get(f"/v1/download/{job_id}").content
    assert ffprobe_bytes(flac, tmp_path / "out.flac")["streams"][0]["codec_name"] == "flac"


def test_a_worker_pod_holds_no_credential_and_only_its_own_urls(system: System, media: MediaServer) -> None:
    job_id, _ = one_job(
        system, {"source": {"type": "url", "url": f"{media.url}/av.mp4"}, "output": {"format": "ogg"}}
    )
    jobs = json.loads(system.kubectl("get", "jobs", "-l", f"audioextract.io/job-id={job_id}", "-o", "json"))
    [job] = jobs["items"]
    spec = job["spec"]["template"]["spec"]
    assert [v["name"] for v in spec["volumes"]] == ["scratch"]  # no store volume
    [container] = spec["containers"]
    env = {e["name"]: e.get("value", "") for e in container["env"]}
    assert not [n for n in env if n.startswith("AWS_") or "SECRET" in n or "ACCESS_KEY" in n]
    assert env["AUDIO_EXTRACT_WORKER_OUTPUT_KEY"] == f"{job_id}/audio.ogg"
    url = urlsplit(env["AUDIO_EXTRACT_WORKER_OUTPUT_URL"])
    assert url.path.endswith(f"/{system.namespace}/{job_id}/audio.ogg")  # this object, nothing else
    assert "X-Amz-Credential=" in url.query and "X-Amz-Expires=" in url.query
    # the URL is a PUT for that key only: reading with it, or writing another key, is refused
    assert httpx.get(env["AUDIO_EXTRACT_WORKER_OUTPUT_URL"]).status_code == 403
    other = env["AUDIO_EXTRACT_WORKER_OUTPUT_URL"].replace(f"{job_id}/audio.ogg", f"{job_id}/other.ogg")
    assert httpx.put(other, content=b"x").status_code == 403
