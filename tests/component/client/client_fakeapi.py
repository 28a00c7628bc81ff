"""A scripted stand-in of the API on a real local HTTP server, for the client's and the command's
component tests: it answers 429/503 when told to (which the real API does only under real load),
cuts a download off midway, and moves each job one step per poll. It takes uploads as the API on a
volume store does (no presigned URLs). The real API: ``client_realapi`` (uploads on both stores)
and the e2e tier (tests/e2e/test_e2e_cli.py)."""

from __future__ import annotations

import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STEPS = [
    ("queued", None, 0),
    ("processing", "downloading_video", 10),
    ("processing", "extracting_audio", 60),
    ("processing", "finalizing", 90),
]
AUDIO = bytes(range(256)) * 2048  # 512 KiB of "audio"


@dataclass
class Job:
    job_id: str
    batch_id: str
    spec: dict[str, Any]
    polls: int = 0
    cancelled: bool = False

    @property
    def fails(self) -> bool:
        return "noaudio" in json.dumps(self.spec["source"])

    def view(self) -> dict[str, Any]:
        status, step, progress = STEPS[min(self.polls, len(STEPS) - 1)]
        error = output = None
        if self.cancelled:
            status, step, error = (
                "cancelled",
                None,
                {"code": "CANCELLED", "message": "Cancelled", "details": None},
            )
        elif self.polls >= len(STEPS):
            if self.fails:
                status, step = "failed", None
                error = {
                    "code": "NO_AUDIO_STREAM",
                    "message": "The source has no audio stream",
                    "details": None,
                }
            else:
                status, step, progress = "completed", None, 100
                name = (self.spec.get("options") or {}).get("filename") or self.job_id
                output = {
                    "filename": f"{name}.{self.spec['output']['format']}",
                    "url": f"/v1/download/{self.job_id}",
                    "size": len(AUDIO),
                    "duration": 1.0,
                    "format": self.spec["output"]["format"],
                    "bitrate": "128k",
                }
        return {
            "jobId": self.job_id,
            "batchId": self.batch_id,
            "status": status,
            "progress": progress,
            "currentStep": step,
            "estimatedTimeRemaining": None,
            "inputFile": None,
            "outputFile": output,
            "downloadUrl": output and output["url"],
            "error": error,
            "options": {"filename": None, "webhook": None, "priority": "normal"},
            "createdAt": "2026-01-21T12:34:56Z",
            "startedAt": None,
            "completedAt": None,
            "expiresAt": None,
            "expired": False,
            "webhook": None,
        }


@dataclass
class FakeApi:
    """``refuse``: answers to give POST /v1/batch (and uploads) before accepting, e.g.
    ``[(503, "QUEUE_FULL", "1")]``; ``cut_download_at``: close the first download after that many bytes."""

    refuse: list[tuple[int, str, str | None]] = field(default_factory=list)
    refuse_uploads: list[tuple[int, str, str | None]] = field(default_factory=list)
    cut_download_at: int | None = None
    batches: dict[str, list[Job]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    log: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def jobs(self) -> dict[str, Job]:
        return {j.job_id: j for jobs in self.batches.values() for j in jobs}

    def batch_view(self, batch_id: str) -> dict[str, Any]:
        views = [j.view() for j in self.batches[batch_id]]
        count = {
            s: sum(v["status"] == s for v in views)
            for s in ("queued", "processing", "completed", "failed", "cancelled")
        }
        return {
            "batchId": batch_id,
            "name": batch_id.replace("_", "-"),
            "phase": "Running",
            "totalJobs": len(views),
            **count,
            "cancelRequested": any(j.cancelled for j in self.batches[batch_id]),
            "webhook": None,
            "webhookDelivery": None,
            "createdAt": None,
            "completedAt": None,
            "jobs": views,
        }

    def create(self, body: dict[str, Any], key: str | None) -> tuple[dict[str, Any], bool]:
        if key and key in self.keys:
            batch_id = self.keys[key]
            replayed = True
        else:
            batch_id = f"batch_{secrets.token_hex(8)}"
            self.batches[batch_id] = [
                Job(f"job_{secrets.token_hex(8)}", batch_id, spec) for spec in body["jobs"]
            ]
            if key:
                self.keys[key] = batch_id
            replayed = False
        jobs = [
            {"jobId": j.job_id, "status": "queued", "statusUrl": f"/v1/status/{j.job_id}"}
            for j in self.batches[batch_id]
        ]
        return {"batchId": batch_id, "totalJobs": len(jobs), "jobs": jobs}, replayed


def serve(api: FakeApi) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def fail(
            self, status: int, code: str, retry_after: str | None = None, message: str = "refused"
        ) -> None:
            self.reply(
                status,
                {"success": False, "error": {"code": code, "message": message}},
                {"Retry-After": retry_after} if retry_after else None,
            )

        def body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_POST(self) -> None:
            data = self.body()
            with api.lock:
                api.log.append(("POST", self.path, dict(self.headers.items())))
                if self.path == "/v1/uploads":
                    if self.headers.get("Content-Type", "").startswith("application/json"):
                        # As the real API on a volume store: no presigned URL, stream the bytes.
                        return self.fail(400, "INVALID_REQUEST", message="cannot take direct uploads")
                    if api.refuse_uploads:
                        return self.fail(*api.refuse_uploads.pop(0))
                    file_id = f"upl_{secrets.token_hex(8)}"
                    api.uploads[file_id] = data
                    return self.reply(201, {"success": True, "data": {"fileId": file_id, "size": len(data)}})
                if self.path == "/v1/batch":
                    if api.refuse:
                        return self.fail(*api.refuse.pop(0))
                    accepted, replayed = api.create(json.loads(data), self.headers.get("Idempotency-Key"))
                    return self.reply(
                        202,
                        {"success": True, "data": accepted},
                        {"Idempotent-Replayed": "true"} if replayed else None,
                    )
                m = re.fullmatch(r"/v1/batch/(batch_\w+)/cancel", self.path)
                if m and m.group(1) in api.batches:
                    for job in api.batches[m.group(1)]:
                        job.cancelled = job.cancelled or job.view()["status"] not in ("completed", "failed")
                    return self.reply(202, {"success": True, "data": api.batch_view(m.group(1))})
            self.fail(404, "JOB_NOT_FOUND", message="No such job")

        def do_GET(self) -> None:
            with api.lock:
                api.log.append(("GET", self.path, dict(self.headers.items())))
                m = re.fullmatch(r"/v1/batch/(batch_\w+)", self.path)
                if m and m.group(1) in api.batches:
                    for job in api.batches[m.group(1)]:
                        job.polls += 1
                    return self.reply(200, {"success": True, "data": api.batch_view(m.group(1))})
                m = re.fullmatch(r"/v1/(status|download)/(job_\w+)", self.path)
                job = api.jobs().get(m.group(2)) if m else None
                if not m or job is None:
                    return self.fail(404, "JOB_NOT_FOUND", message="No such job")
                view = job.view()
                if m.group(1) == "status":
                    return self.reply(200, {"success": True, "data": view})
                if view["status"] in ("queued", "processing"):
                    return self.fail(202, "JOB_NOT_COMPLETED", "5")
                if view["error"]:
                    return self.fail(409, view["error"]["code"], message=view["error"]["message"])
                cut, api.cut_download_at = api.cut_download_at, None
            first = int(re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", "bytes=0-")).group(1))
            self.send_response(206 if first else 200)
            self.send_header("Content-Type", "audio/mpeg")
            self.send_header("Content-Length", str(len(AUDIO) - first))
            if first:
                self.send_header("Content-Range", f"bytes {first}-{len(AUDIO) - 1}/{len(AUDIO)}")
            self.end_headers()
            if cut is not None:
                self.wfile.write(AUDIO[first:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(AUDIO[first:])

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
