"""The worker with an object store, as the operator runs it there: no credentials, a presigned PUT
for its output object and a presigned GET for its uploaded source, against a real S3 server
(SeaweedFS, ``s3_server``), with real ffmpeg on generated media.

The URLs are presigned here with botocore, as the operator would; the object key they write is
deliberately not ``<jobId>/<filename>``, so the result shows the worker reports the key it was
given."""

from __future__ import annotations

import os
import stat
import subprocess
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import botocore.session
import httpx
import pytest
from botocore.config import Config

from audio_extract_common.batch_status import ErrorCode
from audio_extract_common.results import EXIT_OK, EXIT_PERMANENT, EXIT_TRANSIENT, WorkerResult
from audio_extract_worker.job import run_job
from audio_extract_worker.presigned import PresignedStore, Retry
from audio_extract_worker.progress import ProgressReporter
from audio_extract_worker.settings import WorkerSettings
from audio_extract_worker.spec import WorkerJob
from support.loopback_servers import Server
from support.media_files import SOURCE_SECONDS, Media, ffprobe_json
from support.worker_runs import JOB_ID, job_spec

LOOPBACK = "127.0.0.0/8"
UPLOAD_ID = "upl_00000000000000aa"
QUICK = Retry(attempts=3, backoff=0.01, max_delay=0.05)


def signature(url: str) -> str:
    return parse_qs(urlsplit(url).query)["X-Amz-Signature"][0]


@dataclass
class Bucket:
    """The test's corner of the S3 server's bucket (a prefix of its own) and a client that
    presigns URLs for it as the operator does."""

    s3: Any
    prefix: str
    tmp: Path

    def client(self, endpoint_url: str | None = None) -> Any:
        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=endpoint_url or self.s3.endpoint_url,
            region_name=self.s3.region,
            aws_access_key_id=self.s3.access_key_id,
            aws_secret_access_key=self.s3.secret_access_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def presign(self, method: str, key: str, expires: int = 600, endpoint_url: str | None = None) -> str:
        operation = {"PUT": "put_object", "GET": "get_object"}[method]
        params = {"Bucket": self.s3.bucket, "Key": key}
        return str(
            self.client(endpoint_url).generate_presigned_url(operation, Params=params, ExpiresIn=expires)
        )

    def put(self, key: str, source: Path) -> None:
        self.client().put_object(Bucket=self.s3.bucket, Key=key, Body=source.read_bytes())

    def keys(self) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=self.s3.bucket, Prefix=self.prefix)
        return sorted(o["Key"] for o in listed.get("Contents", []))

    def download(self, key: str) -> tuple[Path, dict[str, Any]]:
        got = self.client().get_object(Bucket=self.s3.bucket, Key=key)
        path = self.tmp / f"downloaded-{uuid.uuid4().hex}{Path(key).suffix}"
        path.write_bytes(got["Body"].read())
        return path, got


@pytest.fixture
def bucket(s3_server: Any, tmp_path: Path) -> Bucket:
    return Bucket(s3_server, f"test-{uuid.uuid4().hex[:12]}/", tmp_path)


def audio_stream(path: Path) -> dict[str, Any]:
    data = ffprobe_json(path, "-show_entries", "stream=codec_type,codec_name:format=duration")
    (audio,) = [s for s in data["streams"] if s["codec_type"] == "audio"]
    return {"codec": audio["codec_name"], "duration": float(data["format"]["duration"])}


def run_in_process(
    spec: dict[str, Any],
    scratch: Path,
    key: str,
    output_url: str,
    source_url: str | None = None,
    retry: Retry = QUICK,
    **settings: Any,
) -> WorkerResult:
    s = WorkerSettings(
        scratch_dir=scratch,
        store_root=scratch / "no-volume",
        output_url=output_url,
        output_key=key,
        source_url=source_url,
        connect_timeout=2,
        read_timeout=5,
        **settings,
    )
    with PresignedStore.from_settings(s, retry) as store:
        return run_job(WorkerJob.model_validate(spec), s, store, ProgressReporter(JOB_ID, None, None))


def scratch_files(scratch: Path) -> list[Path]:
    return sorted(p for p in scratch.rglob("*") if p.is_file())


# --- through the entry point, as the Job runs it ---------------------------------------------


def test_a_url_sources_output_is_put_to_the_presigned_object(
    media: Media, server: Server, bucket: Bucket, run_process, workdirs: tuple[Path, Path]
) -> None:  # type: ignore[no-untyped-def]
    source = server.file("/media/My%20Clip.mp4", media.aac_mp4)
    key = bucket.key(f"outputs/{JOB_ID}/output.mp3")
    url = bucket.presign("PUT", key)
    run = run_process(
        job_spec({"type": "url", "url": source}, {"format": "mp3", "quality": "low"}),
        allow_cidrs=LOOPBACK,
        output_url=url,
        output_key=key,
    )
    assert run.exit_code == EXIT_OK, run.stderr
    out = run.result.output
    assert out is not None and out.path == key and out.filename == "My Clip.mp3", out
    assert bucket.keys() == [key]
    downloaded, got = bucket.download(key)
    assert got["ContentLength"] == out.size == downloaded.stat().st_size
    assert got["ContentType"] == "audio/mpeg"
    probed = audio_stream(downloaded)
    assert probed["codec"] == "mp3" and abs(probed["duration"] - SOURCE_SECONDS) < 0.2, probed
    store, scratch = workdirs
    assert list(store.iterdir()) == [] and scratch_files(scratch) == []  # no volume, nothing left
    assert signature(url) not in run.stderr + run.result_text


def test_an_uploaded_source_is_read_through_a_presigned_get(
    media: Media, bucket: Bucket, run_process, workdirs: tuple[Path, Path]
) -> None:  # type: ignore[no-untyped-def]
    upload = bucket.key(f"uploads/{UPLOAD_ID}")
    bucket.put(upload, media.pcm_mkv)
    key = bucket.key(f"{JOB_ID}/talk.flac")
    run = run_process(
        job_spec({"type": "upload", "file": UPLOAD_ID}, {"format": "flac"}, {"filename": "talk"}),
        output_url=bucket.presign("PUT", key),
        output_key=key,
        source_url=bucket.presign("GET", upload),
    )
    assert run.exit_code == EXIT_OK, run.stderr
    out, source = run.result.output, run.result.inputFile
    assert out is not None and out.path == key and out.filename == "talk.flac", out
    assert source is not None and source.name == UPLOAD_ID and source.size == media.pcm_mkv.stat().st_size
    assert bucket.keys() == sorted([upload, key])
    downloaded, got = bucket.download(key)
    assert got["ContentType"] == "audio/flac" and got["ContentLength"] == out.size
    probed = audio_stream(downloaded)
    assert probed["codec"] == "flac" and abs(probed["duration"] - SOURCE_SECONDS) < 0.05, probed
    assert scratch_files(workdirs[1]) == []


def test_a_missing_upload_fails_for_good(bucket: Bucket, run_process) -> None:  # type: ignore[no-untyped-def]
    key = bucket.key(f"{JOB_ID}/out.mp3")
    run = run_process(
        job_spec({"type": "upload", "file": UPLOAD_ID}, {"format": "mp3"}),
        output_url=bucket.presign("PUT", key),
        output_key=key,
        source_url=bucket.presign("GET", bucket.key(f"uploads/{UPLOAD_ID}")),  # never uploaded
    )
    error = run.result.error
    assert run.exit_code == EXIT_PERMANENT and error is not None, (run.exit_code, run.stderr)
    assert error.code == ErrorCode.DOWNLOAD_FAILED, error
    assert error.message == f"upload {UPLOAD_ID} was not found in the store", error
    assert bucket.keys() == []


@pytest.mark.parametrize("broken", ["expired", "forged"])
def test_a_put_url_the_store_refuses_is_a_transient_failure_and_leaves_no_object(
    broken: str, media: Media, server: Server, bucket: Bucket, run_process, workdirs: tuple[Path, Path]
) -> None:  # type: ignore[no-untyped-def]
    source = server.file("/clip.mkv", media.pcm_mkv)
    key = bucket.key(f"{JOB_ID}/clip.mp3")
    if broken == "expired":
        url = bucket.presign("PUT", key, expires=1)
        time.sleep(2)
    else:
        url = bucket.presign("PUT", key)
        url = url.replace(signature(url), "0" * len(signature(url)))
    run = run_process(
        job_spec({"type": "url", "url": source}, {"format": "mp3"}),
        allow_cidrs=LOOPBACK,
        output_url=url,
        output_key=key,
    )
    error = run.result.error
    assert run.exit_code == EXIT_TRANSIENT and error is not None, (run.exit_code, run.stderr)
    assert error.code == ErrorCode.INTERNAL_ERROR
    assert error.message.startswith(f"could not store the output {key}: HTTP 403"), error
    assert bucket.keys() == []
    assert scratch_files(workdirs[1]) == []
    assert signature(url) not in run.stderr + run.result_text


def recording_path(tmp_path: Path) -> tuple[str, Path]:
    """A PATH whose ffmpeg and ffprobe write their environment to a file, then run the real one."""
    bin_dir, seen = tmp_path / "bin", tmp_path / "environments"
    bin_dir.mkdir()
    for tool in ("ffmpeg", "ffprobe"):
        real = subprocess.run(["which", tool], capture_output=True, text=True, check=True).stdout.strip()
        script = bin_dir / tool
        script.write_text(f'#!/bin/sh\nenv >> "{seen}"\necho ---- >> "{seen}"\nexec "{real}" "$@"\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return f"{bin_dir}:{os.environ['PATH']}", seen


def test_the_urls_reach_no_log_line_no_result_and_no_ffmpeg_process(
    media: Media, bucket: Bucket, run_process, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    upload = bucket.key(f"uploads/{UPLOAD_ID}")
    bucket.put(upload, media.aac_mp4)
    key = bucket.key(f"{JOB_ID}/out.ogg")
    output_url, source_url = bucket.presign("PUT", key), bucket.presign("GET", upload)
    path, seen = recording_path(tmp_path)
    monkeypatch.setenv("PATH", path)
    run = run_process(
        job_spec({"type": "upload", "file": UPLOAD_ID}, {"format": "ogg", "normalize": True}),
        output_url=output_url,
        output_key=key,
        source_url=source_url,
        log_format="json",
    )
    assert run.exit_code == EXIT_OK, run.stderr
    children = seen.read_text()
    assert children.count("----") >= 3  # ffprobe, the loudness passes and the encode all ran
    assert f"AUDIO_EXTRACT_WORKER_OUTPUT_KEY={key}" in children
    for url in (output_url, source_url):
        for text in (run.stderr, run.result_text, children):
            assert signature(url) not in text and "X-Amz-Credential" not in text


# --- in process: retries, caps and what is logged --------------------------------------------


@dataclass
class FlakyFront:
    """A front for the S3 server that answers each PUT with the next status of ``plan`` (503s,
    say) and forwards it once the plan has run out. URLs presigned for the front's address verify
    upstream: the request goes on with the Host it was signed for."""

    server: Server
    bucket: Bucket
    plan: list[int]

    def presign_put(self, key: str) -> str:
        url = self.bucket.presign("PUT", key, endpoint_url=self.server.url(""))
        self.server.routes[urlsplit(url).path] = self._forward
        return url

    def puts(self) -> list[tuple[dict[str, str], bytes]]:
        return [(headers, body) for method, _, headers, body in self.server.hits if method == "PUT"]

    def _forward(self, h: BaseHTTPRequestHandler) -> None:
        method, path, headers, body = self.server.hits[-1]
        if self.plan:
            h.send_response(self.plan.pop(0))
            h.send_header("Retry-After", "0")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        sent = {k: v for k, v in headers.items() if k.lower() in ("host", "content-length", "content-type")}
        upstream = httpx.request(method, f"{self.bucket.s3.endpoint_url}{path}", headers=sent, content=body)
        h.send_response(upstream.status_code)
        h.send_header("Content-Length", str(len(upstream.content)))
        h.end_headers()
        h.wfile.write(upstream.content)


@pytest.fixture
def flaky(bucket: Bucket, make_server) -> FlakyFront:  # type: ignore[no-untyped-def]
    return FlakyFront(make_server(), bucket, [])


def test_a_store_answering_503_is_retried_and_the_object_then_appears(
    media: Media, server: Server, bucket: Bucket, flaky: FlakyFront, workdirs: tuple[Path, Path]
) -> None:
    key = bucket.key(f"{JOB_ID}/clip.wav")
    flaky.plan[:] = [503, 503]
    source = server.file("/clip.mkv", media.pcm_mkv)
    result = run_in_process(
        job_spec({"type": "url", "url": source}, {"format": "wav"}),
        workdirs[1],
        key,
        flaky.presign_put(key),
        allow_cidrs=LOOPBACK,
    )
    assert result.output is not None and result.output.path == key, result.error
    puts = flaky.puts()
    assert len(puts) == 3  # two 503s, then through
    for headers, body in puts:  # streamed from the file with its length: no chunked upload
        assert int(headers["Content-Length"]) == len(body) == result.output.size
        assert "Transfer-Encoding" not in headers and headers["Content-Type"] == "audio/wav"
    assert bucket.keys() == [key]
    assert audio_stream(bucket.download(key)[0])["codec"] == "pcm_s16le"
    assert scratch_files(workdirs[1]) == []


def test_a_store_that_keeps_failing_ends_the_job_as_transient(
    media: Media, server: Server, bucket: Bucket, flaky: FlakyFront, workdirs: tuple[Path, Path]
) -> None:
    key = bucket.key(f"{JOB_ID}/clip.mp3")
    flaky.plan[:] = [503] * 10
    source = server.file("/clip.mkv", media.pcm_mkv)
    result = run_in_process(
        job_spec({"type": "url", "url": source}, {"format": "mp3"}),
        workdirs[1],
        key,
        flaky.presign_put(key),
        allow_cidrs=LOOPBACK,
    )
    assert result.error is not None and result.transient, result
    assert result.error.message == f"could not store the output {key}: HTTP 503", result.error
    assert len(flaky.puts()) == QUICK.attempts
    assert bucket.keys() == [] and scratch_files(workdirs[1]) == []


def test_an_unreachable_store_is_transient_too(
    media: Media, server: Server, workdirs: tuple[Path, Path]
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/bucket/{JOB_ID}/a.mp3?X-Amz-Signature=0123456789abcdef"
    source = server.file("/clip.mkv", media.pcm_mkv)
    result = run_in_process(
        job_spec({"type": "url", "url": source}, {"format": "mp3"}),
        workdirs[1],
        f"{JOB_ID}/a.mp3",
        url,
        allow_cidrs=LOOPBACK,
    )
    assert result.error is not None and result.transient, result
    assert result.error.message.startswith(f"could not store the output {JOB_ID}/a.mp3: ConnectError"), (
        result.error
    )
    assert "0123456789abcdef" not in result.error.model_dump_json()


def test_an_upload_over_the_size_cap_is_refused_before_it_is_read(
    media: Media, bucket: Bucket, workdirs: tuple[Path, Path]
) -> None:
    upload = bucket.key(f"uploads/{UPLOAD_ID}")
    bucket.put(upload, media.aac_mp4)
    key = bucket.key(f"{JOB_ID}/out.mp3")
    result = run_in_process(
        job_spec({"type": "upload", "file": UPLOAD_ID}, {"format": "mp3"}),
        workdirs[1],
        key,
        bucket.presign("PUT", key),
        bucket.presign("GET", upload),
        max_source_bytes=1000,
    )
    assert result.error is not None and result.error.code == ErrorCode.SOURCE_TOO_LARGE, result
    assert result.permanent and result.inputFile is None
    assert bucket.keys() == [upload] and scratch_files(workdirs[1]) == []


def test_an_empty_upload_has_size_zero_and_is_invalid_media(
    bucket: Bucket, workdirs: tuple[Path, Path]
) -> None:
    """The ranged GET of an empty object is answered 416 with its length in Content-Range."""
    empty = workdirs[1] / "empty"
    empty.write_bytes(b"")
    upload = bucket.key(f"uploads/{UPLOAD_ID}")
    bucket.put(upload, empty)
    empty.unlink()
    key = bucket.key(f"{JOB_ID}/out.mp3")
    result = run_in_process(
        job_spec({"type": "upload", "file": UPLOAD_ID}, {"format": "mp3"}),
        workdirs[1],
        key,
        bucket.presign("PUT", key),
        bucket.presign("GET", upload),
    )
    assert result.error is not None and result.error.code == ErrorCode.INVALID_VIDEO, result
    assert bucket.keys() == [upload]


def test_log_records_never_hold_a_signature_even_at_debug(
    media: Media, bucket: Bucket, workdirs: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """httpx logs each request's URL at INFO (the entry point raises its level; in process it is
    not): what reaches a handler carries the object's path but not the query."""
    upload = bucket.key(f"uploads/{UPLOAD_ID}")
    bucket.put(upload, media.aac_mp4)
    key = bucket.key(f"{JOB_ID}/out.mp3")
    output_url, source_url = bucket.presign("PUT", key, expires=1), bucket.presign("GET", upload)
    time.sleep(2)  # the PUT URL has expired: the failure's messages are logged too
    with caplog.at_level("DEBUG"):
        result = run_in_process(
            job_spec({"type": "upload", "file": UPLOAD_ID}, {"format": "mp3"}),
            workdirs[1],
            key,
            output_url,
            source_url,
        )
    assert result.error is not None and result.transient, result
    lines = [r.getMessage() for r in caplog.records]
    assert any("HTTP Request: PUT" in line and key.rsplit("/", 1)[-1] in line for line in lines), lines
    assert any("HTTP Request: GET" in line for line in lines), lines
    text = "\n".join(lines)
    for url in (output_url, source_url):
        assert signature(url) not in text and "X-Amz-Credential" not in text
