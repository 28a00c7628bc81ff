"""Which way an upload's bytes go, against the real API on both stores (``client_realapi``): by
default straight to an object store (the API hands out a presigned PUT and never sees the bytes),
on a volume through the API after one refused request per client; ``direct=True`` only the
presigned PUT; the command's ``--upload-mode``, with its progress bar on either way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from client_realapi import KEY, TENANT, RealApi
from client_realapi import serve as serve_real

from audio_extract_client import AsyncClient, Client, errors
from audio_extract_localcluster.localnet import free_port
from support.s3_server import S3Server
from support.terminal import run_in_terminal

VIDEO = os.urandom(700_000)  # three of the client's 256 KiB chunks: progress moves in steps
CLI = [sys.executable, "-m", "audio_extract_client.cli"]

DIRECT = "audio_extract_api_direct_uploads_total"  # presigned PUTs handed out
STREAMED = "audio_extract_api_uploads_total"  # upload bodies the API received and stored
STREAMED_BYTES = "audio_extract_api_upload_bytes_total"


def _closed_port() -> str:
    return f"http://127.0.0.1:{free_port()}"


def _video(tmp_path: Path, name: str = "talk.mp4") -> Path:
    path = tmp_path / name
    path.write_bytes(VIDEO)
    return path


def _job(file_id: str) -> dict[str, Any]:
    return {"source": {"type": "upload", "file": file_id}, "output": {"format": "mp3"}}


def _sources(api: RealApi) -> list[dict[str, Any]]:
    """The sources of every batch the API created."""
    return [job["source"] for obj in api.kube.objects.values() for job in obj["spec"]["jobs"]]


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIO_EXTRACT_") and k != "NO_COLOR"}
    return {**env, "AUDIO_EXTRACT_API_URL": url, "AUDIO_EXTRACT_API_KEY": KEY}


def _cli(url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=_env(url), cwd=cwd, timeout=120)


# --- the client ---------------------------------------------------------------------------------


def test_by_default_the_bytes_go_straight_to_an_object_store(api_s3: RealApi, tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    with Client(api_s3.url, KEY) as client:
        result = client.upload(_video(tmp_path), on_progress=lambda done, total: seen.append((done, total)))
        accepted = client.submit_batch([_job(result.fileId)])
    assert api_s3.uploads() == {result.fileId: VIDEO} and result.size == len(VIDEO)
    assert api_s3.metric(DIRECT, tenant=TENANT) == 1
    assert api_s3.metric(STREAMED, tenant=TENANT) == 0 and api_s3.metric(STREAMED_BYTES, tenant=TENANT) == 0
    assert api_s3.upload_posts(201) == 1 and api_s3.upload_posts(400) == 0
    assert seen == [(262_144, 700_000), (524_288, 700_000), (700_000, 700_000)]
    # A source the API takes only once its bytes are in the store ("upload not complete" before).
    assert accepted.totalJobs == 1 and _sources(api_s3) == [{"type": "upload", "file": result.fileId}]


def test_on_a_volume_the_default_streams_after_asking_once_per_client(
    api_volume: RealApi, tmp_path: Path
) -> None:
    seen: list[tuple[int, int | None]] = []
    with Client(api_volume.url, KEY) as client:
        first = client.upload(_video(tmp_path, "a.mp4"), on_progress=lambda d, t: seen.append((d, t)))
        second = client.upload(_video(tmp_path, "b.mp4"))
        accepted = client.submit_batch([_job(first.fileId), _job(second.fileId)])
    assert api_volume.uploads() == {first.fileId: VIDEO, second.fileId: VIDEO}
    assert api_volume.upload_posts(400) == 1  # the JSON form, asked by the first upload only
    assert api_volume.upload_posts(201) == 2 and api_volume.metric(STREAMED, tenant=TENANT) == 2
    assert api_volume.metric(STREAMED_BYTES, tenant=TENANT) == 2 * len(VIDEO)
    assert api_volume.metric(DIRECT, tenant=TENANT) == 0
    assert seen[-1] == (700_000, 700_000) and len(seen) == 3  # the streamed bytes' progress alone
    assert accepted.totalJobs == 2 and len(_sources(api_volume)) == 2

    with Client(api_volume.url, KEY) as other:  # what one client learnt is its own
        other.upload(_video(tmp_path, "c.mp4"))
    assert api_volume.upload_posts(400) == 2 and api_volume.metric(STREAMED, tenant=TENANT) == 3


def test_direct_only_on_a_volume_raises_the_refusal(api_volume: RealApi, tmp_path: Path) -> None:
    video = _video(tmp_path)
    with Client(api_volume.url, KEY) as client:
        with pytest.raises(errors.InvalidRequest) as caught:
            client.upload(video, direct=True)
        assert caught.value.status == 400 and caught.value.code == "INVALID_REQUEST"
        assert api_volume.uploads() == {} and api_volume.upload_posts(201) == 0
        client.upload(video)  # the default on the same client: streamed, without asking again
    assert api_volume.upload_posts(400) == 1 and len(api_volume.uploads()) == 1


def test_streamed_only_on_an_object_store_goes_through_the_api(api_s3: RealApi, tmp_path: Path) -> None:
    with Client(api_s3.url, KEY) as client:
        result = client.upload(_video(tmp_path), direct=False)
    assert api_s3.uploads() == {result.fileId: VIDEO}
    assert api_s3.metric(STREAMED, tenant=TENANT) == 1 and api_s3.metric(DIRECT, tenant=TENANT) == 0


def test_a_store_the_client_cannot_reach_is_a_transport_error(s3_server: S3Server, tmp_path: Path) -> None:
    # The API signs for an address this client cannot reach (e.g. a store inside the cluster).
    prefix = f"client-{uuid.uuid4().hex[:10]}"
    with serve_real(tmp_path / "api", s3_server, prefix, presign_endpoint_url=_closed_port()) as api:
        with Client(api.url, KEY) as client, pytest.raises(errors.TransportError, match="PUT to the store"):
            client.upload(_video(tmp_path))
        assert api.metric(DIRECT, tenant=TENANT) == 1 and api.uploads() == {}
        _video(tmp_path)
        proc = _cli(api.url, "submit", "talk.mp4", "-f", "mp3", cwd=tmp_path)
    assert proc.returncode == 1 and "no answer: PUT to the store" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


async def test_the_async_client_decides_alike(api_s3: RealApi, api_volume: RealApi, tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    async with AsyncClient(api_s3.url, KEY) as client:
        direct = await client.upload(_video(tmp_path), on_progress=lambda d, t: seen.append((d, t)))
        await client.submit_batch([_job(direct.fileId)])
    assert api_s3.uploads() == {direct.fileId: VIDEO} and seen[-1] == (700_000, 700_000)
    assert api_s3.metric(DIRECT, tenant=TENANT) == 1 and api_s3.metric(STREAMED, tenant=TENANT) == 0

    async with AsyncClient(api_volume.url, KEY) as client:
        streamed = [await client.upload(_video(tmp_path, f"{n}.mp4")) for n in range(2)]
        with pytest.raises(errors.InvalidRequest):
            await client.upload(_video(tmp_path), direct=True)
    assert api_volume.uploads() == {u.fileId: VIDEO for u in streamed}
    assert api_volume.upload_posts(400) == 2  # once for the default, once asked for direct only


# --- the command --------------------------------------------------------------------------------


def test_the_command_uploads_direct_by_default_with_a_bar_and_streamed_when_asked(
    api_s3: RealApi, tmp_path: Path
) -> None:
    _video(tmp_path)
    term = run_in_terminal([*CLI, "submit", "talk.mp4", "-f", "mp3"], _env(api_s3.url), cwd=tmp_path)
    assert term.exit_code == 0, term.text
    assert any("upload talk.mp4" in s and "700.0/700.0 kB" in s for s in term.screens), term.screens
    assert api_s3.metric(DIRECT, tenant=TENANT) == 1 and api_s3.metric(STREAMED, tenant=TENANT) == 0

    proc = _cli(api_s3.url, "submit", "talk.mp4", "-f", "mp3", "--upload-mode", "streamed", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert api_s3.metric(STREAMED, tenant=TENANT) == 1 and api_s3.metric(DIRECT, tenant=TENANT) == 1
    assert api_s3.metric(STREAMED_BYTES, tenant=TENANT) == len(VIDEO)
    uploads = api_s3.uploads()
    assert list(uploads.values()) == [VIDEO, VIDEO]
    assert sorted(s["file"] for s in _sources(api_s3)) == sorted(uploads)


def test_the_command_on_a_volume_falls_back_and_direct_only_fails(
    api_volume: RealApi, tmp_path: Path
) -> None:
    _video(tmp_path)
    proc = _cli(api_volume.url, "submit", "talk.mp4", "-f", "mp3", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    [job] = json.loads(proc.stdout)["jobs"]
    assert job["source"] == "talk.mp4" and api_volume.metric(STREAMED, tenant=TENANT) == 1

    proc = _cli(api_volume.url, "submit", "talk.mp4", "-f", "mp3", "--upload-mode", "direct", cwd=tmp_path)
    assert proc.returncode == 1 and "INVALID_REQUEST (400)" in proc.stderr, proc.stderr
    assert len(api_volume.uploads()) == 1 and len(api_volume.kube.objects) == 1
