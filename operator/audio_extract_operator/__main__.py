"""``python -m audio_extract_operator``: run the operator.

Same as ``kopf run --standalone -m audio_extract_operator.handlers`` plus the namespaces from settings.
"""

from __future__ import annotations

import asyncio
import logging


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
        )
    )


if __name__ == "__main__":
    main()
