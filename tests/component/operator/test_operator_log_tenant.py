"""Every operator log line about a batch names its tenant (docs/contract.md §7): kopf's per-object
lines about a batch or one of its Jobs, the operator's own lines written while it works on a batch
(mapping a Job, admitting it); the webhook delivery lines are in
``tests/component/webhooks/test_webhook_log_tenant.py``. Lines about no single batch say ``-``.

The lines go through the operator's own log format and filter (``logs``), with the operator's
handlers, loops and webhook pump running unchanged on the in-memory API server (``operator_fakeapi``).
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import kopf
import pytest
from kopf._core.actions.loggers import LocalObjectLogger, ObjectLogger
from operator_fakeapi import NS, FakeApi, job_name
from test_operator_job_deleted import Operator

from audio_extract_common import ids
from audio_extract_operator import logs

TENANT = "acme-media"


class Lines:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def matching(self, pattern: str) -> list[str]:
        return [line for line in self.stream.getvalue().splitlines() if re.search(pattern, line)]


@pytest.fixture
def lines() -> Iterator[tuple[Lines, logs.TenantFilter]]:
    """The process's log configuration on a captured stream: the format and a tenant filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(logs.FORMAT))
    tenant_filter = logs.TenantFilter()
    handler.addFilter(tenant_filter)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield Lines(stream), tenant_filter
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def labelled(api: FakeApi, name: str, jobs: int = 1) -> dict:
    api.add_batch(name, jobs)
    api.objects[("extractionbatches", NS, name)]["metadata"]["labels"] = {ids.TENANT_LABEL: TENANT}
    return api.get("extractionbatches", NS, name)


async def test_kopf_lines_about_a_batch_and_about_its_jobs_name_the_tenant(lines) -> None:
    captured, tenant_filter = lines
    api = FakeApi()
    op = Operator(api)
    tenant_filter.book = op.state.registry
    body = labelled(api, "b")
    op.state.registry.observe_batch(body)
    await op.state.reconciler.batch(body)
    job = api.get("jobs", NS, job_name(body, 0))
    op.state.registry.observe_job(job)
    settings = kopf.OperatorSettings()
    # what kopf logs through its per-object loggers: a handler's retry, a patch that failed
    ObjectLogger(body=body, settings=settings).warning("Handler 'reconcile_batch' failed temporarily")
    LocalObjectLogger(body=job, settings=settings).error("Handler 'job_event' failed with an exception")
    other = api.get("extractionbatches", NS, "b") | {"metadata": {"name": "unknown", "namespace": NS}}
    ObjectLogger(body=other, settings=settings).warning("Handler 'reconcile_batch' failed temporarily")
    assert len(captured.matching(f"kopf.objects tenant={TENANT}: Handler 'reconcile_batch'")) == 1
    assert len(captured.matching(f"kopf.objects tenant={TENANT}: Handler 'job_event'")) == 1
    assert len(captured.matching(r"kopf.objects tenant=-: Handler 'reconcile_batch'")) == 1


async def test_the_operators_own_lines_while_working_on_a_batch_name_its_tenant(lines) -> None:
    captured, _ = lines
    api = FakeApi()
    op = Operator(api)
    body = labelled(api, "b", jobs=2)
    op.state.registry.observe_batch(body)
    await op.state.reconciler.batch(body)
    await op.admit()  # logs "admitted ..."
    await op.job_event("DELETED", api.delete_by_hand("jobs", NS, job_name(body, 0)))  # logs "... is gone"
    logging.getLogger("audio_extract_operator.loops").warning("listing our Jobs failed: %s", "refused")
    admitted = captured.matching(r"audio_extract_operator\.loops .*: admitted ")
    gone = captured.matching(r"audio_extract_operator\.reconcile .*the Job of job 0 is gone")
    assert admitted and all(f"tenant={TENANT}:" in line for line in admitted), admitted
    assert gone and all(f"tenant={TENANT}:" in line for line in gone), gone
    # a line about no single batch, and one after the batch's step ended
    assert captured.matching(r"tenant=-: listing our Jobs failed")


def test_the_tenant_a_call_site_names_wins_and_tasks_inherit_the_batch_they_were_started_for(lines) -> None:
    import asyncio

    captured, _ = lines
    log = logging.getLogger("audio_extract_operator.test")

    async def main() -> None:
        with logs.about(TENANT):
            child = asyncio.create_task(asyncio.sleep(0, log.info("in a task")))
        await child
        log.info("explicit", extra={"tenant": "other"})
        log.info("after")

    asyncio.run(main())
    assert captured.matching(f"tenant={TENANT}: in a task")
    assert captured.matching("tenant=other: explicit")
    assert captured.matching("tenant=-: after")
