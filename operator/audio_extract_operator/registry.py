"""What the operator knows between API calls: its Jobs (for admission) and the batches it watches.

Fed by the watch (kopf events) and by the operator's own writes. The admission decision depends
on the count of running Jobs, so a stale watch event must not undo a newer local fact: every
record keeps the resourceVersion it came from and older events are ignored.

Every batch stays in the registry until it is deleted, which is days after it finished (record
retention): thousands of them. So a batch is kept as what the decisions read (``BatchRecord``:
its uid, resourceVersion and the status of each entry), a few hundred bytes, never its body (tens
of kilobytes as Python objects). Jobs are few: they go with their TTL.
"""

from __future__ import annotations

import asyncio
import bisect
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from audio_extract_common import ids
from audio_extract_common.batch_resource import API_VERSION, KIND

from .admission import Candidate
from .jobs import ADMIT_BY_ANNOTATION, BATCH_CREATED_ANNOTATION, INDEX_ANNOTATION, PRIORITY_ANNOTATION
from .mapping import job_finished, job_running, job_suspended

Ref = tuple[str, str]
"""(namespace, name)"""


def _rv(obj: Mapping[str, Any]) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except ValueError:  # opaque by contract; etcd-backed servers use integers
        return 0


def owner_batch(job: Mapping[str, Any]) -> str | None:
    for ref in job["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == KIND and ref.get("apiVersion") == API_VERSION:
            return ref.get("name")
    return None


@dataclass(frozen=True, slots=True)
class BatchRecord:
    uid: str
    rv: int
    entries: tuple[str | None, ...]
    """The status of the entry at each index (None: no entry yet)."""
    tenant: str | None = None
    """Its tenant label, for the log lines about it (``logs``); interned: tenants are few."""

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> BatchRecord:
        jobs = (body.get("status") or {}).get("jobs") or []
        by_index = {j.get("index"): j.get("status") for j in jobs}
        size = max((i for i in by_index if isinstance(i, int)), default=-1) + 1
        # interned: the same few state names, not one string per entry of every batch
        entries = tuple(sys.intern(s) if isinstance(s, str) else None for s in map(by_index.get, range(size)))
        tenant = (body["metadata"].get("labels") or {}).get(ids.TENANT_LABEL)
        return cls(
            uid=body["metadata"]["uid"],
            rv=_rv(body),
            entries=entries,
            tenant=sys.intern(tenant) if isinstance(tenant, str) else None,
        )

    def entry(self, index: int) -> str | None:
        return self.entries[index] if 0 <= index < len(self.entries) else None


@dataclass(frozen=True, slots=True)
class JobInfo:
    namespace: str
    name: str
    uid: str
    batch: str
    batch_uid: str
    index: int
    priority: str
    batch_created: str
    suspended: bool
    finished: str | None
    rv: int
    pod_running: bool = False
    """A pod of it runs (``mapping.job_running``): admitted Jobs split into waiting and running."""
    admit_by: str | None = None
    """With an object store, when its presigned URLs stop covering its deadline (``worker_urls``)."""

    @classmethod
    def of(cls, job: Mapping[str, Any]) -> JobInfo | None:
        meta = job["metadata"]
        batch = owner_batch(job)
        if batch is None:
            return None
        ann = meta.get("annotations") or {}
        owner_uid = next(r["uid"] for r in meta["ownerReferences"] if r.get("name") == batch)
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta.get("uid", ""),
            batch=batch,
            batch_uid=owner_uid,
            index=int(ann.get(INDEX_ANNOTATION, "0")),
            priority=ann.get(PRIORITY_ANNOTATION, "normal"),
            batch_created=ann.get(BATCH_CREATED_ANNOTATION) or meta.get("creationTimestamp") or "",
            suspended=job_suspended(job),
            finished=job_finished(job),
            rv=_rv(job),
            pod_running=job_running(job),
            admit_by=ann.get(ADMIT_BY_ANNOTATION),
        )

    @property
    def running(self) -> bool:
        return not self.suspended and self.finished is None

    @property
    def waiting(self) -> bool:
        """Suspended and not finished: admission's to start, when nothing else holds it back."""
        return self.suspended and self.finished is None

    def candidate(self) -> Candidate:
        return Candidate(self.namespace, self.name, self.priority, self.batch_created, self.index)


class Registry:
    def __init__(self) -> None:
        self.jobs: dict[Ref, JobInfo] = {}
        self.batches: dict[Ref, BatchRecord] = {}
        self.keys: dict[str, Ref] = {}
        """batch key -> (namespace, name), for progress reports that name only a job id."""
        self.blocked: set[Ref] = set()
        """Jobs that must not be admitted (being cancelled or deleted)."""
        self.creating: set[Ref] = set()
        """Batches whose Jobs are being created: their Jobs wait until all exist and have entries,
        so a batch's jobs compete together (a low-priority job created first must not take a slot
        its high-priority sibling needs). Other batches' Jobs are admitted meanwhile: a burst of
        batches does not hold back the first one's."""
        self.wake = asyncio.Event()
        self.jobs_synced = False
        self.made_started: set[Ref] = set()
        """Jobs made unsuspended whose entries the creating handler is about to record as
        ``processing`` in one write: their own events need not each write it first."""
        self.starting = 0
        """Slots taken for Jobs being admitted or made started that ``running_count`` does not
        count yet: an admission pass and a batch's creation take slots at the same time."""
        self._order: list[tuple[tuple[int, str, str, str, int], Ref]] = []
        """Waiting Jobs in admission order (``Candidate.order``), kept sorted as they come, so a
        pass reads the first few instead of sorting every queued Job: with 18,000 queued, sorting
        them at each pass was a fifth of the operator's CPU. Entries that stopped waiting are
        dropped when a pass meets them, and a Job that goes (deleted, forgotten) leaves at once."""
        self._ordered: set[Ref] = set()

    # --- Jobs ---------------------------------------------------------------------------------

    def observe_job(self, job: Mapping[str, Any], deleted: bool = False) -> JobInfo | None:
        info = JobInfo.of(job)
        if info is None:
            return None
        ref = (info.namespace, info.name)
        known = self.jobs.get(ref)
        if deleted:
            if known is None or known.uid == info.uid:
                self._pop(ref)
                self.blocked.discard(ref)
                self.wake.set()
            return None
        if known is not None and known.uid == info.uid and known.rv > info.rv:
            return known  # a stale event: keep the newer local fact
        self._put(ref, info)
        if known is None or known.running != info.running or known.finished != info.finished:
            self.wake.set()
        return info

    def _put(self, ref: Ref, info: JobInfo) -> None:
        self.jobs[ref] = info
        if info.waiting and ref not in self._ordered:
            bisect.insort(self._order, (info.candidate().order(), ref))
            self._ordered.add(ref)

    def _pop(self, ref: Ref) -> JobInfo | None:
        """Forget a Job, and its place in the order: without admission passes (Kueue mode) nothing
        else would ever drop it."""
        info = self.jobs.pop(ref, None)
        if info is not None and ref in self._ordered:
            entry = (info.candidate().order(), ref)
            i = bisect.bisect_left(self._order, entry)
            if i < len(self._order) and self._order[i] == entry:
                del self._order[i]
                self._ordered.discard(ref)
        return info

    def forget_job(self, ref: Ref) -> None:
        """The server says this Job does not exist (any more)."""
        if self._pop(ref) is not None:
            self.blocked.discard(ref)
            self.wake.set()

    def forget_missing(self, namespace: str | None, listed: set[Ref], listed_rv: int) -> int:
        """Drop the Jobs of ``namespace`` (None: all) that a listing at ``listed_rv`` did not show,
        unless seen after it: a watch that reconnects lists what exists but never reports what
        vanished meanwhile, and a vanished running Job would hold an admission slot for ever."""
        gone = [
            ref
            for ref, info in self.jobs.items()
            if (namespace is None or ref[0] == namespace) and ref not in listed and info.rv <= listed_rv
        ]
        for ref in gone:
            self.forget_job(ref)
        # A mark not to admit a Job that does not exist (a cancelled job whose Job was never
        # made) would otherwise stay for ever: no DELETED event comes to clear it.
        self.blocked -= {
            ref
            for ref in self.blocked
            if (namespace is None or ref[0] == namespace) and ref not in listed and ref not in self.jobs
        }
        return len(gone)

    def set_suspended(self, ref: Ref, suspended: bool, rv: int) -> None:
        known = self.jobs.get(ref)
        if known is not None:
            self._put(ref, replace(known, suspended=suspended, rv=max(rv, known.rv)))

    def block(self, ref: Ref) -> None:
        self.blocked.add(ref)

    def running_count(self) -> int:
        return sum(1 for j in self.jobs.values() if j.running)

    def free_slots(self, limit: int) -> int:
        """Slots under the running limit that no running Job and no admission under way holds."""
        return max(0, limit - self.running_count() - self.starting)

    def take_slots(self, wanted: int, limit: int) -> int:
        """Take up to ``wanted`` free slots for Jobs to start (give them back with ``give_back``
        once those Jobs are observed or have failed to start); how many were taken. None while
        admissible Jobs wait: they come first."""
        if not self.jobs_synced or self.queued(1):
            return 0
        taken = min(wanted, self.free_slots(limit))
        self.starting += taken
        return taken

    def give_back(self, slots: int, wake: bool = True) -> None:
        """Return slots taken; ``wake`` the admission loop, which may now use any left unused."""
        self.starting = max(0, self.starting - slots)
        if wake and slots:
            self.wake.set()

    def queued(self, limit: int | None = None) -> list[Candidate]:
        """The first ``limit`` (None: all) Jobs admission may start, in admission order: waiting,
        not blocked, not of a batch still being created, and with their entry in status (a job
        that ran without one would have nowhere to record its outcome)."""
        out: list[Candidate] = []
        stale: set[Ref] = set()
        end = len(self._order)
        for i, (_, ref) in enumerate(self._order):
            if limit is not None and len(out) >= limit:
                end = i
                break
            j = self.jobs.get(ref)
            if j is None or not j.waiting:
                stale.add(ref)
            elif (
                ref not in self.blocked
                and (j.namespace, j.batch) not in self.creating
                and self.entry_status(j.namespace, j.batch, j.batch_uid, j.index) is not None
            ):
                out.append(j.candidate())
        if stale:
            self._order[:end] = [e for e in self._order[:end] if e[1] not in stale]
            self._ordered -= stale
        return out

    def jobs_of(self, namespace: str, batch: str) -> list[JobInfo]:
        return [j for j in self.jobs.values() if j.namespace == namespace and j.batch == batch]

    # --- batches ------------------------------------------------------------------------------

    def batch(self, namespace: str, name: str, uid: str) -> BatchRecord | None:
        """What is known of that batch (None: not seen, or the name now belongs to another)."""
        known = self.batches.get((namespace, name))
        return known if known is not None and known.uid == uid else None

    def entry_status(self, namespace: str, batch: str, batch_uid: str, index: int) -> str | None:
        """The status of a batch's entry when last seen; None when not known."""
        known = self.batch(namespace, batch, batch_uid)
        return known.entry(index) if known is not None else None

    def tenant_of(self, kind: str | None, namespace: str | None, name: str | None) -> str | None:
        """The tenant of a batch, or of the batch owning a Job, as last seen (``logs``)."""
        if kind == "Job":
            job = self.jobs.get((namespace or "", name or ""))
            name = job.batch if job is not None else None
        elif kind != KIND:
            return None
        known = self.batches.get((namespace or "", name or ""))
        return known.tenant if known is not None else None

    def batch_id_of(self, namespace: str | None, name: str | None) -> str | None:
        """The public id of a batch as last seen (``logs``)."""
        known = self.batches.get((namespace or "", name or ""))
        return ids.batch_id(ids.batch_key(name or "", known.uid)) if known is not None else None

    def observe_batch(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        meta = body["metadata"]
        name, uid = meta["name"], meta["uid"]
        key = ids.batch_key(name, uid)
        known = self.batches.get((meta["namespace"], name))
        if deleted:
            # only this batch's records: a late event must not erase a successor of the same name
            successor = known is not None and known.uid != uid
            if not successor:
                self.batches.pop((meta["namespace"], name), None)
            if not (successor and ids.batch_key(name, known.uid) == key):  # type: ignore[union-attr]
                self.keys.pop(key, None)
            return
        if known is not None and known.uid == uid and known.rv > _rv(body):
            return  # a stale event
        if known is not None and known.uid != uid:  # a successor of the same name
            self.keys.pop(ids.batch_key(name, known.uid), None)
        ref = (sys.intern(meta["namespace"]), name)
        self.batches[ref] = BatchRecord.of(body)
        self.keys[key] = ref
