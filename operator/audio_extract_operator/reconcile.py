"""What the operator does for one batch and for one Job; kopf handlers and loops call these.

Every function is idempotent (deterministic names, "already exists" accepted only from our own
Job, terminal status entries never change), so it is safe after a crash at any point.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from audio_extract_common import ids
from audio_extract_common.batch_resource import KIND
from audio_extract_common.batch_spec import BatchSpec
from audio_extract_common.batch_status import (
    TERMINAL_STATES,
    BatchStatus,
    ErrorCode,
    JobState,
    JobStatus,
    Step,
)
from audio_extract_common.kube import AlreadyExists, Invalid, KubeError, NotFound
from audio_extract_common.storage import Storage
from audio_extract_common.timefmt import iso, now, parse

from . import k8sevents, metrics, outputs, worker_urls
from .admission import PRIORITY_RANK
from .jobs import build_job, owned_by
from .kube import Kube
from .mapping import (
    cancelled,
    failed_permanently,
    gone_entry,
    job_entry,
    job_finished,
    job_finished_at,
    pod_result,
    set_condition,
)
from .registry import JobInfo, Ref, Registry
from .settings import Settings
from .statuswriter import StatusWriter

log = logging.getLogger(__name__)


JOB_CREATIONS = 40
"""Job creations in flight at once, process-wide: under half of the client's connection pool
(kubernetes_asyncio's 100). A burst's creations would otherwise take every connection, and the
status writes and pod reads of running work would wait behind thousands of them."""


def wall_clock() -> datetime:
    return datetime.now(UTC)


class PermanentProblem(Exception):
    """Retrying cannot help; the batch carries a condition and an Event saying why."""


def initial_entries(body: Mapping[str, Any], spec: BatchSpec, status: BatchStatus) -> BatchStatus | None:
    """One entry per spec job (kept if already there); None when status is already initialized."""
    key = ids.derived_batch_key(body)
    if len(status.jobs) == len(spec.jobs) and status.batchId == ids.batch_id(key):
        return None
    created = body["metadata"].get("creationTimestamp") or iso(now())
    by_index = {j.index: j for j in status.jobs}
    status.batchId = ids.batch_id(key)
    status.jobs = [
        by_index.get(i)
        or JobStatus(
            index=i,
            jobId=ids.job_id(key, i),
            jobName=ids.job_object_name(ids.job_id(key, i)),
            createdAt=created,
        )
        for i in range(len(spec.jobs))
    ]
    return status


def cancel_indexes(spec: BatchSpec) -> set[int]:
    return set(range(len(spec.jobs))) if spec.cancel else {i for i in spec.cancelJobs if i < len(spec.jobs)}


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        registry: Registry,
        writer: StatusWriter,
        storage: Storage | None = None,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.registry = registry
        self.writer = writer
        self.storage = storage
        """The store, for presigning (object store) and for expiring outputs and uploads; None: a
        volume whose files the operator keeps (no ``store.root``)."""
        self.clock: Callable[[], datetime] = wall_clock
        """What the ages of the store's objects are judged against (tests move it on)."""
        self.creation_slots = asyncio.Semaphore(settings.admission.create_concurrency)
        """Batches whose Jobs are created at once. A burst is worked through in arrival order
        (the semaphore wakes its waiters first come, first served): the first batches' Jobs exist
        and start while later batches wait, rather than every batch finishing at the end."""
        self.job_creations = asyncio.Semaphore(JOB_CREATIONS)

    async def batch(self, body: Mapping[str, Any]) -> None:
        """Cancellations applied, status initialized, one Job per unfinished job.

        The entries come first, so a Job can start as it is made: those admission has free slots
        for (nothing admissible queued ahead, the operator admitting, not Kueue) are made
        unsuspended, the rest suspended, and the started ones go ``processing`` in one more write.
        The status kopf handed us is a safe hint, because terminal entries never change back.
        """
        meta = body["metadata"]
        ns, name = meta["namespace"], meta["name"]
        try:
            spec = BatchSpec.model_validate(body["spec"])
        except ValidationError as e:
            await self._permanent(body, "InvalidSpec", f"spec failed validation: {e.errors()[0]['msg']}")
            raise PermanentProblem(str(e)) from None
        key = ids.derived_batch_key(body)
        hint = BatchStatus.model_validate(body.get("status") or {})
        done = {j.index for j in hint.jobs if j.status in TERMINAL_STATES}
        cancel = cancel_indexes(spec) - done
        if done == set(range(len(spec.jobs))) and hint.batchId == ids.batch_id(key):
            # Finished (kopf resumes every retained batch at start-up): nothing to do, and a read of
            # each, thousands at once, would only cost memory and the API server's time.
            return
        for i in sorted(cancel):
            job_name = ids.job_object_name(ids.job_id(key, i))
            # Block first: the admission loop must never start a job we are cancelling.
            self.registry.block((ns, job_name))
            await self.kube.delete_job(ns, job_name)

        # A started job whose Job is gone is the resync's to end (``job_gone``); creating its Job
        # here, at every resume, would run a deleted extraction again.
        started = {j.index for j in hint.jobs if j.status == JobState.processing}
        wanted = [i for i in range(len(spec.jobs)) if i not in done | cancel | started]
        at = iso(now())

        def change(b: dict[str, Any], s: BatchStatus) -> BatchStatus | None:
            s = initial_entries(b, spec, s) or s
            return _mark(s, cancel, lambda e: cancelled(e, at))

        # This batch's suspended Jobs wait for admission until all exist.
        async with self.creation_slots:
            self.registry.creating.add((ns, name))
            taken, made_started = 0, set()
            try:
                if await self.writer.update(ns, name, change) is None:
                    return  # deleted meanwhile
                start = self._to_start(spec, wanted)
                taken = len(start)
                # their own events would each write "processing": ``_started`` writes them at once
                made_started = {(ns, ids.job_object_name(ids.job_id(key, i))) for i in start}
                self.registry.made_started |= made_started
                jobs = [self._ensure_job(body, i, started=i in start) for i in wanted]
                outcomes = await asyncio.gather(*jobs, return_exceptions=True)
                started_now = [i for i, o in zip(wanted, outcomes, strict=True) if o == "started"]
                await self._started(body, started_now)
            finally:
                self.registry.made_started -= made_started
                self.registry.creating.discard((ns, name))
                self.registry.give_back(taken)
                self.registry.wake.set()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        refused = [
            (i, o)
            for i, o in zip(wanted, outcomes, strict=True)
            if isinstance(o, str) and o not in ("ok", "started")
        ]
        await self._refused(body, refused)
        if refused:
            raise PermanentProblem("; ".join(f"job {i}: {o}" for i, o in refused))

    def _to_start(self, spec: BatchSpec, wanted: list[int]) -> set[int]:
        """The jobs to make started, in admission order (priority, then index), as many as there
        are free slots (``Registry.take_slots``); none when Kueue admits."""
        if self.settings.admission.kueue_queue or not wanted:
            return set()
        taken = self.registry.take_slots(len(wanted), self.settings.admission.max_running)
        ranked = sorted(wanted, key=lambda i: (PRIORITY_RANK.get(str(spec.jobs[i].options.priority), 1), i))
        return set(ranked[:taken])

    async def _started(self, body: Mapping[str, Any], started: list[int]) -> None:
        """Jobs made started count as admitted, and their entries go ``processing`` in one write
        (if that write fails, the Jobs' own events map them later)."""
        meta = body["metadata"]
        ns, key = meta["namespace"], ids.derived_batch_key(body)
        tenant = self.registry.tenant_of(KIND, ns, meta["name"])
        infos = []
        for i in started:
            info = self.registry.jobs.get((ns, ids.job_object_name(ids.job_id(key, i))))
            if info is None:
                continue  # gone already: its deletion event maps it
            infos.append(info)
            metrics.admitted(info.priority, tenant, info.batch_created)
            log.info("admitted %s/%s as it was made (%s priority)", ns, info.name, info.priority)
        if not infos:
            return
        try:
            await self.admitted(infos, iso(now()))
        except KubeError as e:
            log.warning("recording admission in %s failed: %s", meta["name"], e)

    async def _refused(self, body: Mapping[str, Any], refused: list[tuple[int, str]]) -> None:
        """Fail the jobs whose Job could not be made ("foreign" name holder, or the server's reason)."""
        key = ids.derived_batch_key(body)
        foreign = [i for i, o in refused if o == "foreign"]
        if foreign:
            names = ", ".join(ids.job_object_name(ids.job_id(key, i)) for i in foreign)
            await self._fail_jobs(
                body,
                set(foreign),
                ErrorCode.INTERNAL_ERROR,
                "a Job with this job's name exists and belongs to something else",
                "JobNameTaken",
                names,
            )
        invalid = [(i, o) for i, o in refused if o != "foreign"]
        if invalid:
            await self._fail_jobs(
                body, {i for i, _ in invalid}, ErrorCode.INTERNAL_ERROR, invalid[0][1], "JobRefused"
            )

    async def _ensure_job(self, body: Mapping[str, Any], index: int, started: bool = False) -> str:
        """Create the job's Job unless ours exists: "ok" (made suspended, or it existed), "started"
        (made unsuspended, as ``started`` asks), "foreign", or why the server refused it."""
        ns, uid = body["metadata"]["namespace"], body["metadata"]["uid"]
        job_name = ids.job_object_name(ids.job_id(ids.derived_batch_key(body), index))
        known = self.registry.jobs.get((ns, job_name))
        if known is not None and known.batch_uid == uid:
            return "ok"
        urls = None
        if self.settings.store.type == "s3":
            if self.storage is None:
                raise RuntimeError("the object store is not open")
            # signed locally, so cheap enough to throw away when the Job turns out to exist: an
            # existing Job keeps the URLs it was made with
            urls = await worker_urls.presign(self.storage, body, index, self.settings)
        try:
            async with self.job_creations:
                created = await self.kube.create_job(
                    build_job(body, index, self.settings, urls, suspended=not started)
                )
            self.registry.observe_job(created)
            if started:
                return "started"
        except AlreadyExists:
            existing = await self.kube.get_job(ns, job_name)  # NotFound: kopf retries the handler
            if not owned_by(existing, uid):
                return "foreign"
            self.registry.observe_job(existing)
        except Invalid as e:
            return f"the Job was refused: {e.message}"
        return "ok"

    async def _fail_jobs(
        self,
        body: Mapping[str, Any],
        idx: set[int],
        code: ErrorCode,
        message: str,
        reason: str,
        detail: str = "",
    ) -> None:
        meta = body["metadata"]
        at = iso(now())

        def change(b: dict[str, Any], s: BatchStatus) -> BatchStatus:
            s = _mark(s, idx, lambda e: failed_permanently(e, code, message, at))
            s.conditions = set_condition(
                s.conditions,
                "Blocked",
                True,
                reason,
                f"{message} {detail}".strip(),
                at,
                b["metadata"].get("generation"),
            )
            return s

        await self.writer.update(meta["namespace"], meta["name"], change)
        await k8sevents.post(self.kube, body, "Warning", reason, f"{message} {detail}".strip())

    async def _permanent(self, body: Mapping[str, Any], reason: str, message: str) -> None:
        meta = body["metadata"]
        at = iso(now())

        def change(b: dict[str, Any], s: BatchStatus) -> BatchStatus:
            s.conditions = set_condition(
                s.conditions, "Blocked", True, reason, message, at, b["metadata"].get("generation")
            )
            return s

        await self.writer.update(meta["namespace"], meta["name"], change)
        await k8sevents.post(self.kube, body, "Warning", reason, message)

    # --- Jobs ---------------------------------------------------------------------------------

    def needs_update(self, info: JobInfo) -> bool:
        """Whether a Job's state may change its entry (avoids reads for Jobs already accounted for)."""
        known = self.registry.batch(info.namespace, info.batch, info.batch_uid)
        if known is None:
            return True
        state = known.entry(info.index)
        if state is None:
            # A new Job before its batch's entries are seen (they are written before the batch's
            # Jobs are made): nothing to map yet, and a read per new Job is thousands of reads when
            # many batches arrive at once. A finished one is still looked at, in case its entry is
            # there by then.
            return info.finished is not None
        if state in TERMINAL_STATES:
            return False
        if info.finished is not None:
            return True
        if (info.namespace, info.name) in self.registry.made_started:
            return False  # its handler writes it processing, with its batch's other Jobs
        if info.suspended:  # suspended again after it ran: preempted by Kueue
            return state == JobState.processing
        return state == JobState.queued

    async def finished_pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]:
        """The pods of a finished Job, to read the worker's result from: as the API server's cache
        has them, and read again consistently only if none of them has a result yet."""
        # The Job controller marks a Job finished only after it saw its pod end, so the cache
        # nearly always has that end already; one consistent list per ending job was what kept
        # outcomes out of status for tens of seconds under a burst (docs/benchmarks.md).
        # Job names are job ids with "-" for "_" (ids.job_object_name).
        selector = f"{ids.JOB_LABEL}=job_{job_name.removeprefix('job-')}"
        pods = await self.kube.list_pods(namespace, selector, cached=True)
        if any(pod_result(p) is not None for p in pods):
            return pods
        return await self.kube.list_pods(namespace, selector)

    async def job(self, job: Mapping[str, Any]) -> None:
        """Map one Job's state (and, once it finished, its pods' results) into its entry."""
        info = JobInfo.of(job)
        if info is None or not self.needs_update(info):
            return
        pods: list[dict[str, Any]] = []
        if info.finished is not None:
            pods = await self.finished_pods(info.namespace, info.name)
        at = iso(now())
        ended: list[bool] = [False]
        """Whether the last run of ``change`` (the one written) recorded the Job's outcome."""

        def change(b: dict[str, Any], s: BatchStatus) -> BatchStatus | None:
            ended[0] = False
            if b["metadata"]["uid"] != info.batch_uid:
                return None
            entry = next((j for j in s.jobs if j.index == info.index), None)
            if entry is None:
                return None
            new = job_entry(entry, job, pods, at)
            if new == entry:
                return None
            ended[0] = new.status in TERMINAL_STATES
            s.jobs = [new if j.index == info.index else j for j in s.jobs]
            return s

        if await self.writer.update(info.namespace, info.batch, change) is not None and ended[0]:
            metrics.outcome_recorded(job_finished_at(job))

    async def queue_reason(self, info: JobInfo, reason: str) -> None:
        """Record why a queued job waits (Kueue's words for its Workload)."""

        def change(b: dict[str, Any], s: BatchStatus) -> BatchStatus | None:
            if b["metadata"]["uid"] != info.batch_uid:
                return None
            entry = next((j for j in s.jobs if j.index == info.index), None)
            if entry is None or entry.status != JobState.queued or entry.queueReason == reason:
                return None
            s.jobs = [entry.model_copy(update={"queueReason": reason}) if j is entry else j for j in s.jobs]
            return s

        await self.writer.update(info.namespace, info.batch, change)

    async def admitted(self, infos: Sequence[JobInfo], started: str) -> None:
        """Jobs of one batch were just unsuspended: their queued entries go ``processing``, in one
        write (and one already processing gets the ``startedAt`` it lacks)."""
        batch = infos[0]
        indexes = {info.index for info in infos}

        def change(b: dict[str, Any], s: BatchStatus) -> BatchStatus | None:
            if b["metadata"]["uid"] != batch.batch_uid:
                return None
            changed = False
            for j in s.jobs:
                if j.index not in indexes:
                    continue
                if j.status == JobState.queued:
                    j.status, j.startedAt = JobState.processing, started
                    j.currentStep = Step.downloading_video
                    changed = True
                elif j.status == JobState.processing and not j.startedAt:
                    j.startedAt = started
                    changed = True
            return s if changed else None

        await self.writer.update(batch.namespace, batch.batch, change)

    async def job_gone(
        self,
        namespace: str,
        job_name: str,
        batch: str,
        batch_uid: str,
        index: int,
        job: Mapping[str, Any] | None = None,
    ) -> None:
        """A job's Job no longer exists (``job``: its last state, from the DELETED event, if any):
        its Job is created again if it never started, else its entry ends (``mapping.gone_entry``)."""
        ref = (namespace, job_name)
        if job is not None:
            # A successor may exist already (the resync made it before this event came): the
            # deletion of its predecessor says nothing about it.
            try:
                current = await self.kube.get_job(namespace, job_name)
            except NotFound:
                pass
            else:
                if current["metadata"].get("uid") != job["metadata"].get("uid"):
                    self.registry.observe_job(current)
                    return
        known = self.registry.jobs.get(ref)
        if known is not None and (job is None or known.uid == job["metadata"].get("uid")):
            self.registry.forget_job(ref)
        pods: list[dict[str, Any]] = []
        if job is not None and job_finished(job) is not None:
            # With background propagation the pods outlive their Job a little: the outcome may
            # still be readable.
            pods = await self.finished_pods(namespace, job_name)
        at = iso(now())
        restart: list[dict[str, Any]] = []

        def change(b: dict[str, Any], s: BatchStatus) -> BatchStatus | None:
            meta = b["metadata"]
            if meta["uid"] != batch_uid or meta.get("deletionTimestamp"):
                return None  # another batch of that name, or its Jobs go because it goes
            if index in cancel_indexes(BatchSpec.model_validate(b["spec"])):
                return None  # the cancellation ends it, with its own code
            entry = next((j for j in s.jobs if j.index == index), None)
            if entry is None:
                return None
            new = gone_entry(entry, job, pods, at)
            if new is None:
                restart.append(b)
                return None
            if new == entry:
                return None
            log.warning("%s/%s: the Job of job %d is gone: %s", namespace, batch, index, new.status)
            s.jobs = [new if j.index == index else j for j in s.jobs]
            return s

        await self.writer.update(namespace, batch, change, fresh=True)  # ``restart`` must not be stale
        if restart:
            log.info(
                "%s/%s: the Job of job %d is gone before it started: creating it again",
                namespace,
                batch,
                index,
            )
            outcome = await self._ensure_job(restart[-1], index)
            self.registry.wake.set()
            if outcome != "ok":
                await self._refused(restart[-1], [(index, outcome)])

    async def resync(self, body: Mapping[str, Any], listed: set[Ref]) -> None:
        """Unfinished entries of ``body`` whose Job is not in ``listed`` (our Jobs, from a listing):
        confirmed missing with a read, then ``job_gone``. For a Job deleted while the operator
        was down, or whose DELETED event was lost: no event will ever come for it."""
        meta = body["metadata"]
        if meta.get("deletionTimestamp") or (meta["namespace"], meta["name"]) in self.registry.creating:
            return  # a batch whose Jobs are being made has entries before it has all its Jobs
        status = BatchStatus.model_validate(body.get("status") or {})
        cancel = cancel_indexes(BatchSpec.model_validate(body["spec"]))
        for entry in status.jobs:
            if entry.status in TERMINAL_STATES or entry.index in cancel:
                continue
            ref = (meta["namespace"], entry.jobName)
            if ref in listed:
                continue
            try:  # created after the listing began, perhaps
                self.registry.observe_job(await self.kube.get_job(*ref))
                continue
            except NotFound:
                pass
            await self.job_gone(ref[0], ref[1], meta["name"], meta["uid"], entry.index)

    # --- retention ----------------------------------------------------------------------------

    async def retain(self, body: Mapping[str, Any]) -> None:
        """Remove expired outputs; delete the batch once its record retention has passed."""
        meta = body["metadata"]
        status = BatchStatus.model_validate(body.get("status") or {})
        current = now()
        if (
            status.completedAt
            and (current - parse(status.completedAt)).total_seconds()
            >= self.settings.retention.record_seconds
        ):
            log.info(
                "deleting %s/%s: finished at %s, past record retention",
                meta["namespace"],
                meta["name"],
                status.completedAt,
            )
            await self._remove_outputs([j.jobId for j in status.jobs])
            await self.kube.delete_batch(meta["namespace"], meta["name"], meta["uid"])
            return
        due = [
            j
            for j in status.jobs
            if j.status == JobState.completed
            and not j.expired
            and j.expiresAt
            and parse(j.expiresAt) <= current
        ]
        if not due:
            return
        await self._remove_outputs([j.jobId for j in due])
        idx = {j.index for j in due}

        def change(_b: dict[str, Any], s: BatchStatus) -> BatchStatus:
            for j in s.jobs:
                if j.index in idx:
                    j.expired = True
            return s

        await self.writer.update(meta["namespace"], meta["name"], change)
        await k8sevents.post(
            self.kube,
            body,
            "Normal",
            "OutputsExpired",
            f"{len(due)} output(s) removed after the retention window",
        )

    async def batch_deleted(self, body: Mapping[str, Any]) -> None:
        """Remove the outputs of a batch deleted by hand (retention removed its own already)."""
        if self.registry.keys.get(ids.derived_batch_key(body)) is not None:
            return  # the key lives on in a batch of the same name created since
        await self._remove_outputs(outputs.job_ids(body))

    async def sweep_outputs(self, live_keys: set[str]) -> None:
        """Remove outputs whose batch is gone (``outputs.orphaned``); ``live_keys`` must come from
        a complete listing of every batch the operator watches."""
        if self.storage is None or not self.settings.retention.sweep_orphan_outputs:
            return
        grace = self.settings.retention.orphan_grace_seconds
        gone = await outputs.sweep(self.storage, live_keys, self.clock(), grace)
        if gone:
            log.info("removed %d output(s) of batches gone: %s", len(gone), ", ".join(gone[:10]))

    async def _remove_outputs(self, job_ids: list[str]) -> None:
        if self.storage is not None and job_ids:
            await outputs.remove(self.storage, job_ids)


def _mark(status: BatchStatus, idx: set[int], fn) -> BatchStatus:  # type: ignore[no-untyped-def]
    status.jobs = [fn(j) if j.index in idx else j for j in status.jobs]
    return status
