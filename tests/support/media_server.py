"""Serving generated media (``audio_extract_dev.media.make_media``) to pods on the node's address.

media = MediaServer(make_media(tmp_path)).start()   # http://<HOST_IP>:<port>/...
...
media.stop()
"""

from __future__ import annotations

import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from audio_extract_localcluster.host import HOST_IP


class MediaServer:
    """Serves a directory on the node's address (pods reach it); ``/slow/<file>`` waits
    ``slow_seconds`` before answering."""

    def __init__(self, directory: Path, slow_seconds: float = 60.0, address: str = HOST_IP) -> None:
        self.directory = directory
        slow = slow_seconds

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *a: Any, **kw: Any) -> None:
                super().__init__(*a, directory=str(directory), **kw)

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.startswith("/slow/"):
                    time.sleep(slow)
                    self.path = self.path[len("/slow") :]
                super().do_GET()

        self.httpd = ThreadingHTTPServer((address, 0), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> MediaServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
