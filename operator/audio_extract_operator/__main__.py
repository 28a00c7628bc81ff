"""``python -m audio_extract_operator``: run the operator.

Same as ``kopf run --standalone -m audio_extract_operator.handlers`` plus the namespaces from settings.
"""

from __future__ import annotations

import asyncio
import logging
import socket


def main() -> None:
    import kopf

    from . import handlers  # registers the handlers

    settings = handlers.SETTINGS
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kopf").setLevel(settings.kopf_log_level)
    liveness = f"http://0.0.0.0:{settings.liveness_port}/healthz" if settings.liveness_port else None
    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            liveness_endpoint=liveness,
            ready_flag=handlers.READINESS.started,  # /readyz answers 503 until kopf sets it
            # kopf's default identity asks the password database for the user's name, which a
            # numeric non-root user of an image (65532, or an arbitrary UID on OpenShift) lacks
            identity=f"audio-extract-operator@{socket.gethostname()}",
        )
    )


if __name__ == "__main__":
    main()
