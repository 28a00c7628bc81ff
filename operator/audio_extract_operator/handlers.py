"""kopf handlers: thin, each parses what it got and calls one function of ``reconcile``.

Batches: create/resume/spec-change → ``Reconciler.batch``; every event feeds the registry.
Jobs (only ours, selected by label on the server): every event feeds the registry and maps the
Job's state into its batch's status. Admission, retention and webhook delivery run as loops
started here at start-up (see ``loops``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import kopf

from audio_extract_common import ids
from audio_extract_common.batch_resource import API_VERSION, GROUP, KIND, PLURAL, VERSION
from audio_extract_common.batch_status import TERMINAL_STATES
from audio_extract_common.kube import KubeError, Transient
from audio_extract_common.objectstore import StoreError
from audio_extract_common.storage import Storage, open_storage

from . import deliveries, kueue, logs, loops, metrics
from .diffbase import DiffBaseStorage
from .jobs import MANAGED_BY, MANAGED_BY_LABEL
from .kube import Kube
from .readiness import Readiness, liveness_url
from .reconcile import PermanentProblem
from .registry import JobInfo
from .settings import Settings
from .state import OperatorState

log = logging.getLogger(__name__)
SETTINGS = Settings()  # one per process, read from the environment once
_S = SETTINGS
READINESS = Readiness(liveness_url(_S))  # `python -m audio_extract_operator` hands kopf its flag
BATCH = (GROUP, VERSION, PLURAL)
JOB_EVENT_RETRIES = 3


@contextlib.asynccontextmanager
async def open_store(s: Settings) -> AsyncIterator[Storage | None]:
    """The store the settings name, open for the block; None: a volume without ``store.root`` (the
    operator then keeps every file)."""
    if s.store.type == "volume" and s.store.root is None:
        yield None
        return
    async with open_storage(s.store.type, root=s.store.root, s3=s.store.s3) as storage:
        yield storage


def configure(settings: kopf.OperatorSettings, s: Settings) -> None:
    """kopf's settings for this operator."""
    # Stale watches are the most reported kopf failure: bound them on both sides.
    settings.watching.server_timeout = s.kopf.watch_server_timeout
    settings.watching.client_timeout = s.kopf.watch_server_timeout + 30
    settings.watching.connect_timeout = 30
    # Our Jobs only, filtered by the API server rather than in this process.
    settings.watching.label_selectors["batch/v1", "jobs"] = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
    # kopf's own bookkeeping lives in annotations; status is ours and schema-checked.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="audioextract.io")
    settings.persistence.diffbase_storage = DiffBaseStorage(
        prefix="audioextract.io", compared=[(API_VERSION, KIND)]
    )
    settings.persistence.finalizer = "audioextract.io/operator"
    settings.posting.level = logging.WARNING  # our Events say what happened; don't mirror logs
    # No bound on kopf's per-object workers (its default): a worker stays for idle_timeout (5 s)
    # after its object's last event, so with a bound of N, the events of more than N objects
    # changing at once wait in turns of 5 s (2,000 new Jobs stalled every Job's mapping, and so
    # its webhook, for minutes). Requests to the API server are bounded by our client's pool.
    settings.queueing.worker_limit = None
    # An idle worker keeps its object's last body until it exits, and at start-up kopf gives every
    # listed batch a worker at once: with 5 s, 20,000 retained batches meant thousands of bodies
    # alive together (docs/benchmarks.md, "Operator": memory at start-up against 0.5 s). A worker
    # that exits early costs a new task at the object's next event.
    settings.queueing.idle_timeout = 0.5
    settings.execution.max_workers = 4
    # Resources are known (our CRD, Jobs): no cluster-wide CRD watch, so a namespaced Role suffices.
    settings.scanning.disabled = True
    settings.networking.request_timeout = 60
    settings.networking.error_backoffs = [1, 2, 5, 10]
    # kopf lists every batch at start-up in one response unless told to page: with thousands of
    # retained batches that is hundreds of megabytes at once, which the process keeps as RSS.
    settings.watching.chunk_size = s.list_page_size


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure(settings, _S)
    closing = contextlib.AsyncExitStack()
    try:
        storage = await closing.enter_async_context(open_store(_S))  # one client pool per process
        kube = await Kube.connect(_S.kubeconfig)
    except BaseException:
        await closing.aclose()
        raise
    state = OperatorState(_S, kube, storage, READINESS)
    state.closing = closing
    memo.state = state
    logs.FILTER.book = state.registry  # kopf's lines about a batch or Job name its tenant
    pump = deliveries.install(state)
    metrics.watch(state.registry, pump)  # the queue and backlog gauges read these at each scrape
    await state.progress.start()
    state.tasks = [
        asyncio.create_task(loops.admission_loop(state.kube, _S, state.registry, state.reconciler)),
        asyncio.create_task(loops.retention_loop(state.kube, _S, state.registry, state.reconciler)),
    ]
    if _S.admission.kueue_queue:
        state.tasks.append(
            asyncio.create_task(kueue.kueue_loop(state.kube, _S, state.registry, state.reconciler))
        )
    if _S.store.type == "s3" and _S.store.usage_interval:
        state.tasks.append(
            asyncio.create_task(loops.store_usage_loop(state.kube, _S, state.registry, state.reconciler))
        )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    state: OperatorState | None = getattr(memo, "state", None)
    if state is None:
        return
    metrics.watch(None, None)
    await state.close()


# --- ExtractionBatch ---------------------------------------------------------------------------


MAX_BACKOFF = 60.0
"""Seconds at most between two attempts of a batch's handler."""


def retry_delay(backoff: float, retry: int) -> float:
    """The handler's ``retry``-th delay: doubling from ``backoff``, at most ``MAX_BACKOFF``."""
    return float(min(backoff * 2 ** min(retry, 16), MAX_BACKOFF))


def kopf_error(e: KubeError, backoff: float, retry: int) -> kopf.TemporaryError:
    """What kopf does after a handler's call of the Kubernetes API failed: try again, later each
    time. ``Transient`` (429, 5xx, a timeout) starts from ``backoff``; the rest (Forbidden,
    Invalid, Conflict, ...) from twice that, since a Role, an admission webhook or the object may
    change meanwhile. What can never succeed is the reconciler's ``PermanentProblem``, not a
    Kubernetes error."""
    first = backoff if isinstance(e, Transient) else backoff * 2
    return kopf.TemporaryError(str(e), delay=retry_delay(first, retry))


# No timeout and no retry limit: kopf counts a handler's time from its first call, and a batch of
# a burst waits for its turn to create Jobs (``Reconciler.creation_slots``) for minutes, so one 429
# afterwards made kopf give up for good and the batch stayed without status, its Jobs running. The
# handler is idempotent; it is tried again, ever later, until it succeeds or meets a
# ``PermanentProblem``.
@kopf.on.resume(*BATCH, timeout=None, retries=None, backoff=_S.kopf.handler_backoff)
@kopf.on.create(*BATCH, timeout=None, retries=None, backoff=_S.kopf.handler_backoff)
@kopf.on.update(*BATCH, field="spec", timeout=None, retries=None, backoff=_S.kopf.handler_backoff)
async def reconcile_batch(
    body: kopf.Body, meta: kopf.Meta, patch: kopf.Patch, memo: kopf.Memo, retry: int, **_: Any
) -> None:
    state: OperatorState = memo.state
    key = ids.derived_batch_key(body)
    if (meta.get("labels") or {}).get(ids.KEY_LABEL) != key:
        patch.metadata.setdefault("labels", {})[ids.KEY_LABEL] = key  # how the API finds kubectl batches
    state.registry.observe_batch(body)
    try:
        with logs.about(logs.tenant_of(body), logs.batch_id_of(body)):
            await state.reconciler.batch(body)
    except PermanentProblem as e:
        metrics.reconcile_error("batch")
        raise kopf.PermanentError(str(e)) from None
    except KubeError as e:
        metrics.reconcile_error("batch")
        raise kopf_error(e, _S.kopf.handler_backoff, retry) from None
    except StoreError as e:  # presigning a Job's URLs (credentials not there yet, ...)
        metrics.reconcile_error("batch")
        raise kopf.TemporaryError(
            f"the store: {e}", delay=retry_delay(_S.kopf.handler_backoff * 2, retry)
        ) from None


@kopf.on.event(*BATCH)
async def batch_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    state: OperatorState = memo.state
    state.registry.observe_batch(body, deleted=(type == "DELETED"))
    state.writer.observe(body, deleted=(type == "DELETED"))  # its next write needs no read first
    deliveries.observe(state, body, deleted=(type == "DELETED"))  # webhook deliveries owed or pending
    if type == "DELETED":
        with logs.about(logs.tenant_of(body), logs.batch_id_of(body)):
            try:
                await state.reconciler.batch_deleted(body)
            except (OSError, StoreError) as e:  # the retention pass's sweep removes them later
                log.warning("removing the outputs of %s failed: %s", body["metadata"]["name"], e)


# --- Jobs ----------------------------------------------------------------------------------------


@kopf.on.event("batch", "v1", "jobs", labels={MANAGED_BY_LABEL: MANAGED_BY})
async def job_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    state: OperatorState = memo.state
    if type == "DELETED":
        await _job_deleted(state, body)
        return
    info = state.registry.observe_job(body)
    if info is None:
        return
    tenant = state.registry.tenant_of("Job", info.namespace, info.name)
    with logs.about(tenant, job=logs.job_id_of_job(info.name)):
        await _retried(lambda: state.reconciler.job(body), "mapping", body)


async def _job_deleted(state: OperatorState, body: kopf.Body) -> None:
    info = JobInfo.of(body)
    known = state.registry.jobs.get((info.namespace, info.name)) if info is not None else None
    state.registry.observe_job(body, deleted=True)
    if info is None or (known is not None and known.uid != info.uid):
        return  # not ours, or a predecessor's late event
    entry = state.registry.entry_status(info.namespace, info.batch, info.batch_uid, info.index)
    if entry in TERMINAL_STATES:
        return  # the usual case: the TTL of a Job whose outcome is in status
    where = (info.namespace, info.name, info.batch, info.batch_uid, info.index)
    tenant = state.registry.tenant_of(KIND, info.namespace, info.batch)
    with logs.about(tenant, job=logs.job_id_of_job(info.name)):
        await _retried(lambda: state.reconciler.job_gone(*where, body), "handling the deletion of", body)


async def _retried(step: Callable[[], Awaitable[None]], what: str, body: kopf.Body) -> None:
    # Event handlers are not retried by kopf: retry here a few times; the retention loop's
    # resync catches anything still missing.
    for attempt in range(JOB_EVENT_RETRIES):
        try:
            await step()
            return
        except KubeError as e:
            metrics.reconcile_error("job")
            log.warning("%s Job %s (attempt %d): %s", what, body["metadata"]["name"], attempt + 1, e)
            await asyncio.sleep(0.5 * (attempt + 1))
