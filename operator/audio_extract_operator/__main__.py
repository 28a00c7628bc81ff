"""``python -m audio_extract_operator``: run the operator.

Same as ``kopf run --standalone -m audio_extract_operator.handlers`` plus the namespaces from
settings. With ``LEADER_ELECTION_LEASE`` set, several replicas run and only the Lease's holder
operates (``leader.py``); the others stand by until it is gone.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import socket
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

ROLE_LABEL = "audioextract.io/operator-role"


async def _standby_server(ports: list[int]) -> web.AppRunner:
    """While standing by: the probes' endpoints answer (a standby is healthy and ready to take
    over), progress posts are refused (the progress Service selects the leader's pod only)."""

    async def ok(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "ready": True, "role": "standby"})

    async def refuse(_request: web.Request) -> web.Response:
        return web.json_response({"error": "standby replica"}, status=503)

    from . import metrics

    app = web.Application()
    app.router.add_get("/healthz", ok)
    app.router.add_get("/metrics", metrics.handler(None))  # the leader gauge (0) and the process's own
    app.router.add_get("/readyz", ok)
    app.router.add_post("/progress", refuse)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for port in ports:
        await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner


async def _label_pod(kube, namespace: str, pod: str, role: str) -> None:  # type: ignore[no-untyped-def]
    from audio_extract_common.kube import KubeError

    from .kube import MERGE_PATCH

    if not pod:
        return
    try:
        await kube.call(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{pod}",
            {"metadata": {"labels": {ROLE_LABEL: role}}},
            content_type=MERGE_PATCH,
        )
    except KubeError as e:
        logging.getLogger(__name__).warning("labelling pod %s as %s: %s", pod, role, e)


async def _run(identity: str) -> None:
    import kopf
    from kopf._core.engines.peering import Identity  # what kopf.operator takes; kopf does not export it

    from . import handlers, metrics
    from .kube import Kube
    from .leader import LeaderElection

    settings = handlers.SETTINGS
    liveness = (
        f"http://0.0.0.0:{settings.kopf.liveness_port}/healthz" if settings.kopf.liveness_port else None
    )

    def operate() -> Coroutine[Any, Any, None]:
        return kopf.operator(
            standalone=True,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            liveness_endpoint=liveness,
            ready_flag=handlers.READINESS.started,  # /readyz answers 503 until kopf sets it
            identity=Identity(identity),
        )

    if not settings.leader.lease:
        metrics.LEADER.set(1)
        await operate()
        return
    namespace, name = settings.leader.lease.split("/", 1)
    kube = await Kube.connect(settings.kubeconfig)
    # one candidate per process: a restarted container (same pod, same host name) is a new
    # candidate, which waits for the dead process's lease to lapse like any other
    election = LeaderElection(kube, namespace, name, f"{identity}_{secrets.token_hex(4)}")
    try:
        # a restarted container keeps its pod's labels: first say this one is not the leader
        await _label_pod(kube, namespace, settings.leader.pod_name, "standby")
        standby = await _standby_server(
            [p for p in (settings.kopf.liveness_port, settings.progress.port) if p]
        )
        # PID 1 ignores SIGTERM without a handler: a standby stops at once when asked
        waiting = asyncio.ensure_future(election.acquire())
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, waiting.cancel)
        try:
            await waiting
        except asyncio.CancelledError:
            return
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            await standby.cleanup()  # kopf and the progress endpoint take these ports over
        holding = election.holding()
        metrics.LEADER.set(1)
        await _label_pod(kube, namespace, settings.leader.pod_name, "leader")
        try:
            await operate()
        finally:
            metrics.LEADER.set(0)
            holding.cancel()
            await election.release()
    finally:
        await kube.close()


def main() -> None:
    from . import handlers, logs

    settings = handlers.SETTINGS
    logs.configure(settings.log_level, settings.kopf.log_level, settings.log_format)
    # kopf's default identity asks the password database for the user's name, which a numeric
    # non-root user of an image (65532, or an arbitrary UID on OpenShift) lacks
    asyncio.run(_run(f"audio-extract-operator@{socket.gethostname()}"))


if __name__ == "__main__":
    main()
