"""The operator's level-based loops: admission, retention/resync and webhook delivery.

kopf reacts to edges (an event per change); these loops look at the whole state at an interval,
so a missed or collapsed event, or a crash between two writes, is corrected on the next pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from audio_extract_common import ids
from audio_extract_common.kube import KubeError, NotFound
from audio_extract_common.objectstore import StoreError
from audio_extract_common.timefmt import iso, now

from . import logs, metrics, upload_expiry, worker_urls
from .admission import Candidate, to_admit
from .jobs import MANAGED_BY, MANAGED_BY_LABEL
from .kube import Kube, batches_path, jobs_path
from .reconcile import Reconciler
from .registry import JobInfo, Ref, Registry
from .settings import Settings

if TYPE_CHECKING:
    from audio_extract_common.storage import Storage

log = logging.getLogger(__name__)
JOB_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"


async def sync_jobs(kube: Kube, settings: Settings, registry: Registry) -> set[Ref]:
    """List our Jobs (in pages) into the registry, so the first admission pass after a restart counts
    every running one, and drop the ones it remembers that no longer exist. Returns what was listed."""
    listed: set[Ref] = set()
    for ns in settings.listed_namespaces:
        listed_rv = ""
        pages = kube.pages(jobs_path(ns), settings.list_page_size, {"labelSelector": JOB_SELECTOR})
        async for items, listed_rv in pages:
            for job in items:
                job.setdefault("metadata", {}).setdefault("resourceVersion", listed_rv)
                registry.observe_job(job)
                listed.add((job["metadata"]["namespace"], job["metadata"]["name"]))
        with contextlib.suppress(ValueError):
            if gone := registry.forget_missing(ns, listed, int(listed_rv)):
                log.info("%d Job(s) gone without a deletion event", gone)
    registry.jobs_synced = True
    return listed


async def admission_pass(kube: Kube, settings: Settings, registry: Registry, reconciler: Reconciler) -> int:
    """Unsuspend queued Jobs up to the running limit; returns how many were chosen. A batch's
    chosen Jobs are unsuspended in turn and recorded in its status in one write, and
    ``admission.create_concurrency`` batches are admitted at once, so a burst is not admitted at
    the pace of four requests in a row per Job."""
    limit = settings.admission.max_running
    running = limit - registry.free_slots(limit)
    chosen = to_admit(registry.queued(max(0, limit - running)), running, limit)
    registry.starting += len(chosen)  # held until the pass ends: a batch's creation may take slots meanwhile
    try:
        await _admit_chosen(kube, settings, registry, reconciler, chosen)
    finally:
        registry.give_back(len(chosen), wake=False)  # the Jobs it admitted wake the loop already
    return len(chosen)


async def _admit_chosen(
    kube: Kube, settings: Settings, registry: Registry, reconciler: Reconciler, chosen: list[Candidate]
) -> None:
    groups: dict[tuple[str, str, str], list[tuple[Candidate, JobInfo]]] = {}
    for c in chosen:
        info = registry.jobs.get((c.namespace, c.name))
        if info is not None:
            groups.setdefault((info.namespace, info.batch, info.batch_uid), []).append((c, info))
    slots = asyncio.Semaphore(settings.admission.create_concurrency)

    async def admit(group: list[tuple[Candidate, JobInfo]]) -> None:
        async with slots:
            started = iso(now())
            admitted = [info for c, info in group if await _admit(kube, registry, reconciler, c, info)]
            if not admitted:
                return
            try:
                await reconciler.admitted(admitted, started)
            except KubeError as e:  # the Jobs' own events map them to processing later
                log.warning("recording admission in %s failed: %s", admitted[0].batch, e)

    for outcome in await asyncio.gather(*(admit(g) for g in groups.values()), return_exceptions=True):
        if isinstance(outcome, BaseException):
            metrics.reconcile_error("admission")
            log.warning("admitting a batch's Jobs failed: %s", outcome)


async def _admit(kube: Kube, registry: Registry, reconciler: Reconciler, c: Candidate, info: JobInfo) -> bool:
    """Unsuspend one Job (or make it again if its URLs went stale); whether it was unsuspended."""
    ref = (c.namespace, c.name)
    with logs.about(registry.tenant_of("Job", c.namespace, c.name), job=logs.job_id_of_job(c.name)):
        if worker_urls.stale(info.admit_by, now()):
            await _renew(kube, registry, reconciler, info)
            return False
        try:
            patched = await kube.set_job_suspended(c.namespace, c.name, False, info.uid)
        except NotFound:
            registry.forget_job(ref)
            return False
        except KubeError as e:
            metrics.reconcile_error("admission")
            log.warning("admitting %s/%s failed: %s", c.namespace, c.name, e)
            return False
        registry.observe_job(patched)
        registry.set_suspended(ref, False, 0)
        metrics.admitted(c.priority, registry.tenant_of("Job", c.namespace, c.name), c.created)
        log.info("admitted %s/%s (%s priority)", c.namespace, c.name, c.priority)
        return True


async def _renew(kube: Kube, registry: Registry, reconciler: Reconciler, info: JobInfo) -> None:
    """Make a Job that waited past its URLs' allowance again, with fresh URLs, instead of admitting
    it: deleted (only that Job, by uid) and created as for a Job deleted before it started
    (``Reconciler.job_gone``). Its place in the queue comes from its batch, so it keeps it."""
    ref = (info.namespace, info.name)
    log.info("%s/%s waited past its URLs' validity: making it again with fresh ones", *ref)
    try:
        await kube.delete_job(info.namespace, info.name, uid=info.uid)
    except KubeError as e:  # changed meanwhile (Conflict) or refused: the next pass looks again
        metrics.reconcile_error("admission")
        log.warning("replacing %s/%s failed: %s", *ref, e)
        return
    registry.forget_job(ref)
    try:
        await reconciler.job_gone(info.namespace, info.name, info.batch, info.batch_uid, info.index)
    except (KubeError, StoreError) as e:  # its DELETED event, or the retention pass's resync, retries
        metrics.reconcile_error("admission")
        log.warning("creating %s/%s again failed: %s", *ref, e)


async def admission_loop(kube: Kube, settings: Settings, registry: Registry, reconciler: Reconciler) -> None:
    while True:
        try:
            if not registry.jobs_synced:
                await sync_jobs(kube, settings, registry)
            registry.wake.clear()
            if not settings.admission.kueue_queue:
                await admission_pass(kube, settings, registry, reconciler)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            metrics.reconcile_error("admission")
            log.warning("admission pass failed: %s", e)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(registry.wake.wait(), timeout=settings.admission.interval)


async def retention_pass(kube: Kube, settings: Settings, registry: Registry, reconciler: Reconciler) -> None:
    """Expire outputs and old batches; resync every unfinished batch with its Jobs (a Job deleted
    unseen); remove outputs whose batch is gone; expire uploads and remove partial ones; re-map
    finished Jobs whose outcome is not in status yet. A batch (or Job) that fails is logged and
    skipped: one odd object must not stop retention for all the others."""
    storage = reconciler.storage
    uploads = await _upload_use(settings, storage, reconciler.clock())
    listed: set[Ref] | None = None
    try:
        listed = await sync_jobs(kube, settings, registry)
    except KubeError as e:  # no resync this pass; retention still runs
        log.warning("listing our Jobs failed: %s", e)
    live_keys: set[str] = set()
    complete = True
    for ns in settings.listed_namespaces:
        try:
            async for page, _ in kube.pages(batches_path(ns), settings.list_page_size):
                for body in page:
                    live_keys.add(ids.derived_batch_key(body))
                    with logs.about(logs.tenant_of(body), logs.batch_id_of(body)):
                        await _isolated(
                            _batch_pass(reconciler, body, listed, uploads), "retention of", body["metadata"]
                        )
        except KubeError as e:
            complete = False
            log.warning("listing the batches of %s failed: %s", ns or "every namespace", e)
    if complete:  # after a partial listing every batch not seen would look gone
        await _isolated(reconciler.sweep_outputs(live_keys), "sweep of outputs in", {"name": "the store"})
    await _isolated(
        _expire_uploads(settings, storage, uploads if complete else None, reconciler.clock()),
        "expiry of uploads in",
        {"name": "the store"},
    )
    for info in list(registry.jobs.values()):
        if info.finished is not None and reconciler.needs_update(info):
            meta = {"namespace": info.namespace, "name": info.name}
            tenant = registry.tenant_of("Job", info.namespace, info.name)
            with logs.about(tenant, job=logs.job_id_of_job(info.name)):
                await _isolated(_remap(kube, reconciler, info), "mapping of", meta)


async def _batch_pass(
    reconciler: Reconciler,
    body: dict[str, Any],
    listed: set[Ref] | None,
    uploads: upload_expiry.UploadUse | None,
) -> None:
    if uploads is not None:  # first: what the listing shows, before this pass changes it
        uploads.observe(body)
    await reconciler.retain(body)
    if listed is not None and not (body.get("status") or {}).get("completedAt"):
        await reconciler.resync(body, listed)


async def _upload_use(
    settings: Settings, storage: Storage | None, at: datetime
) -> upload_expiry.UploadUse | None:
    """The uploads that may have expired, to be matched with the batches using them."""
    if storage is None:
        return None
    try:
        found = await upload_expiry.candidates(storage, at.timestamp(), settings.retention.upload_seconds)
    except (OSError, StoreError) as e:
        log.warning("listing the uploads failed: %s", e)
        return None
    return upload_expiry.UploadUse(found)


async def _expire_uploads(
    settings: Settings, storage: Storage | None, uploads: upload_expiry.UploadUse | None, at: datetime
) -> None:
    """Remove expired uploads (only after a complete listing of the batches: ``uploads``), partial
    writes, and owner markers of uploads gone; ``at``: now, by the reconciler's clock."""
    if storage is None:
        return
    grace = settings.retention.partial_upload_grace_seconds
    partial = await upload_expiry.remove_partials(storage, grace)
    expired = (
        []
        if uploads is None
        else await upload_expiry.remove_expired(
            storage, uploads, at.timestamp(), settings.retention.upload_seconds
        )
    )
    owners = await upload_expiry.remove_stale_owners(storage, at, grace)
    if partial or expired or owners:
        log.info(
            "removed %d expired upload(s) (%s), %d partial write(s), %d owner record(s)",
            len(expired),
            ", ".join(expired[:10]),
            partial,
            owners,
        )


async def _remap(kube: Kube, reconciler: Reconciler, info: JobInfo) -> None:
    await reconciler.job(await kube.get_job(info.namespace, info.name))


async def _isolated(step: Awaitable[None], what: str, meta: Mapping[str, Any]) -> None:
    try:
        await step
    except asyncio.CancelledError:
        raise
    except Exception as e:
        metrics.reconcile_error("retention")
        log.warning("%s %s/%s failed: %s", what, meta.get("namespace"), meta.get("name"), e)


async def retention_loop(kube: Kube, settings: Settings, registry: Registry, reconciler: Reconciler) -> None:
    while True:
        try:
            await retention_pass(kube, settings, registry, reconciler)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            metrics.reconcile_error("retention")
            log.warning("retention pass failed: %s", e)
        await asyncio.sleep(settings.retention.interval)


async def store_usage_loop(
    kube: Kube, settings: Settings, registry: Registry, reconciler: Reconciler
) -> None:
    """An object store's usage for the metrics, every ``store.usage_interval``: it is measured by
    listing every object, too slow and too costly for each scrape."""
    while True:
        if reconciler.storage is not None:
            started = time.monotonic()
            try:
                objects, size = await metrics.measure_store_usage(reconciler.storage)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the last values stay
                log.warning("measuring the store's usage failed: %s", e)
            else:
                took = time.monotonic() - started
                log.debug("the store holds %d object(s), %d bytes (listed in %.1f s)", objects, size, took)
        await asyncio.sleep(settings.store.usage_interval)
