"""The ``audio-extract`` command line (the ``cli`` extra: typer, rich, pyyaml)."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from .app import app
    except ImportError as e:  # the client is installed without the `cli` extra
        sys.exit(
            f"audio-extract: {e.name} is missing; install the command line: pip install 'audio-extract[cli]'"
        )
    app()
