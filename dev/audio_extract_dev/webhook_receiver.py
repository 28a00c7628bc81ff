"""A verifying webhook receiver for development, tests and benchmarks (not part of the image).

Runs an HTTP server on a background thread, verifies every request with
``standardwebhooks.Webhook.verify`` and records it. What it answers is scripted by a
``responder(request, earlier) -> Reply`` where ``earlier`` counts earlier requests with the same
``webhook-id``, so "500 three times then 200" is ``lambda r, n: Reply(500 if n < 3 else 200)``.

    python -m audio_extract_dev.webhook_receiver --port 8099 --secret whsec_...
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Iterable[bytes] = b""
    """Bytes, or an iterable of chunks (possibly endless) sent with chunked encoding."""


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    """time.time() when the request was read."""
    verified: bool
    payload: Any = None
    peer_port: int = 0
    """The client's port: requests on one kept-alive connection share it."""

    @property
    def id(self) -> str:
        return self.headers.get("webhook-id", "")


Responder = Callable[[Received, int], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default backlog of 5 resets bursts of concurrent deliveries


class Receiver:
    def __init__(
        self,
        secret: str | None = None,
        responder: Responder | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.webhook = Webhook(secret) if secret else None
        self.responder: Responder = responder or (lambda _r, _n: Reply())
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server = _Server((host, port), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> Receiver:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="webhook-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(5)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def by_id(self) -> dict[str, list[Received]]:
        with self._lock:
            out: dict[str, list[Received]] = {}
            for r in self.received:
                out.setdefault(r.id, []).append(r)
            return out

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float) -> bool:
        """Block until ``predicate(received)`` holds or ``timeout`` seconds pass."""
        end = time.monotonic() + timeout
        with self._changed:
            while not predicate(list(self.received)):
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.5))
            return True

    def _record(
        self, path: str, headers: dict[str, str], body: bytes, peer_port: int = 0
    ) -> tuple[Received, int]:
        verified, payload = False, None
        if self.webhook is not None:
            try:
                payload = self.webhook.verify(body, headers)
                verified = True
            except Exception:  # any verification failure is recorded, not raised
                verified = False
        else:
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
        rec = Received(path, headers, body, time.time(), verified, payload, peer_port)
        with self._changed:
            earlier = sum(1 for r in self.received if r.id == rec.id)
            self.received.append(rec)
            self._changed.notify_all()
        return rec, earlier

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                rec, earlier = receiver._record(self.path, headers, body, self.client_address[1])
                reply = receiver.responder(rec, earlier)
                self._reply(reply)

            do_GET = do_POST

            def _reply(self, reply: Reply) -> None:
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                try:
                    if isinstance(reply.body, bytes):
                        self.send_header("content-length", str(len(reply.body)))
                        self.end_headers()
                        self.wfile.write(reply.body)
                    else:
                        self.send_header("transfer-encoding", "chunked")
                        self.end_headers()
                        for chunk in reply.body:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                            self.wfile.flush()
                        self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--secret", default=None, help="whsec_... to verify signatures")
    args = parser.parse_args()

    def log(rec: Received, earlier: int) -> Reply:
        print(
            json.dumps(
                {
                    "id": rec.id,
                    "verified": rec.verified,
                    "attempt": earlier + 1,
                    "body": rec.body.decode(errors="replace"),
                }
            ),
            flush=True,
        )
        return Reply()

    receiver = Receiver(args.secret, log, args.host, args.port)
    print(f"listening on {receiver.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        receiver._server.serve_forever()


if __name__ == "__main__":
    main()
