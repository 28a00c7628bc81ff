"""``python -m audio_extract_api [--host H] [--port P]``: serve the API with uvicorn."""

from __future__ import annotations

import argparse

import uvicorn

from .logs import log_config
from .settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the audio-extract API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    uvicorn.run(
        "audio_extract_api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        proxy_headers=True,
        server_header=False,
        log_level="info",
        log_config=log_config(log_format=Settings().log_format),
    )


if __name__ == "__main__":
    main()
