"""Pure bookkeeping: the Job registry (stale events, running count), status initialization,
expiry stamping and which transitions post Events."""

from __future__ import annotations

from audio_extract_common import ids
from audio_extract_common.batch_spec import BatchSpec
from audio_extract_common.batch_status import BatchStatus, JobStatus
from audio_extract_operator.admission import to_admit
from audio_extract_operator.jobs import build_job
from audio_extract_operator.reconcile import Reconciler, cancel_indexes, initial_entries
from audio_extract_operator.registry import JobInfo, Registry
from audio_extract_operator.settings import Settings
from audio_extract_operator.statuswriter import stamp_expiry, transitions

UID = "11111111-2222-3333-4444-555555555555"
JOB = {"source": {"type": "url", "url": "http://example.org/a.mp4"}, "output": {"format": "wav"}}


def batch(priorities: list[str], name: str = "batch-0123456789abcd00") -> dict:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": UID,
            "creationTimestamp": "2026-01-21T12:00:00Z",
        },
        "spec": {"jobs": [{**JOB, "options": {"priority": p}} for p in priorities]},
    }


def with_entries(b: dict) -> dict:
    """The batch once its queued entries are in status (admission waits for them)."""
    s = initial_entries(b, BatchSpec.model_validate(b["spec"]), BatchStatus())
    assert s is not None
    return {**b, "status": s.model_dump(mode="json", exclude_none=True)}


def job_obj(index: int, rv: int, suspend: bool = True, finished: str | None = None) -> dict:
    job = build_job(batch(["normal", "high"]), index, Settings())
    job["metadata"].update(uid=f"uid-{index}", resourceVersion=str(rv))
    job["spec"]["suspend"] = suspend
    if finished:
        job["status"] = {"conditions": [{"type": finished, "status": "True"}]}
    return job


def test_registry_counts_running_and_ignores_stale_events() -> None:
    reg = Registry()
    reg.observe_job(job_obj(0, rv=10))
    reg.observe_job(job_obj(1, rv=11))
    assert reg.queued() == []  # no entries in status yet
    reg.observe_batch(with_entries(batch(["normal", "high"])))
    assert reg.running_count() == 0 and [c.priority for c in reg.queued()] == ["high", "normal"]
    reg.observe_job(job_obj(1, rv=20, suspend=False))
    assert reg.running_count() == 1
    reg.observe_job(job_obj(1, rv=15, suspend=True))  # an older event arriving late
    assert reg.running_count() == 1
    reg.observe_job(job_obj(1, rv=30, suspend=False, finished="Complete"))
    assert reg.running_count() == 0 and len(reg.queued()) == 1
    reg.block(("ns", "job-0123456789abcd01"))
    assert reg.queued() == []
    reg.observe_job(job_obj(0, rv=40), deleted=True)
    assert ("ns", "job-0123456789abcd01") not in reg.jobs and not reg.blocked


def test_a_batch_in_creation_holds_back_only_its_own_jobs() -> None:
    reg = Registry()
    first = build_job(batch(["normal"], name="batch-0123456789abcd00"), 0, Settings())
    second = build_job(batch(["high"], name="batch-0123456789abcd10"), 0, Settings())
    for i, job in enumerate((first, second)):
        job["metadata"].update(uid=f"uid-{i}", resourceVersion=str(10 + i))
        reg.observe_job(job)
    reg.observe_batch(with_entries(batch(["normal"], name="batch-0123456789abcd00")))
    reg.observe_batch(with_entries(batch(["high"], name="batch-0123456789abcd10")))
    reg.creating.add(("ns", "batch-0123456789abcd10"))  # its sibling Jobs are still being made
    assert [c.name for c in reg.queued()] == [first["metadata"]["name"]]
    reg.creating.discard(("ns", "batch-0123456789abcd10"))
    assert len(reg.queued()) == 2


def test_queued_jobs_come_in_admission_order_however_they_were_seen() -> None:
    reg = Registry()
    batches = []
    for i in range(4):
        b = batch(["low", "normal", "high"], name=f"batch-{i}")
        b["metadata"].update(uid=f"{i}{UID[1:]}", creationTimestamp=f"2026-01-21T12:00:0{i}Z")
        reg.observe_batch(with_entries(b))
        batches.append(b)
    seen = []
    for i in (3, 1, 0, 2):  # batches seen out of order, each job by job
        for index in range(3):
            job = build_job(batches[i], index, Settings())
            job["metadata"].update(uid=f"uid-{i}-{index}", resourceVersion="10")
            seen.append(reg.observe_job(job))
    everything = to_admit([j.candidate() for j in seen if j is not None], running=0, limit=12)
    assert len(everything) == 12 and reg.queued() == everything  # the pure policy's order
    assert reg.queued(5) == everything[:5]
    assert [(c.priority, c.created[-3:]) for c in everything[:5]] == [
        ("high", "00Z"),
        ("high", "01Z"),
        ("high", "02Z"),
        ("high", "03Z"),
        ("normal", "00Z"),
    ]


def test_admitted_and_deleted_jobs_leave_the_queue_and_a_suspended_one_comes_back_in_place() -> None:
    reg = Registry()
    reg.observe_batch(with_entries(batch(["normal", "high"])))
    for index in (0, 1):
        reg.observe_job(job_obj(index, rv=10))
    high, normal = reg.queued()
    reg.set_suspended(("ns", high.name), False, 11)  # admitted
    assert reg.queued() == [normal]
    reg.set_suspended(("ns", high.name), True, 12)  # preempted: waits again, first as before
    assert reg.queued() == [high, normal]
    reg.observe_job(job_obj(1, rv=13), deleted=True)
    reg.forget_job(("ns", normal.name))
    assert reg.queued() == []


def test_jobs_that_went_leave_nothing_in_the_order_without_any_admission_pass() -> None:
    # Kueue mode runs no admission pass, so nothing but their deletion drops them.
    reg = Registry()
    for index in (0, 1):
        reg.observe_job(job_obj(index, rv=10))
    reg.observe_job(job_obj(0, rv=11, suspend=False))  # Kueue admitted it
    reg.observe_job(job_obj(0, rv=12, suspend=False, finished="Complete"))
    reg.observe_job(job_obj(0, rv=13), deleted=True)  # its TTL
    reg.forget_job(("ns", job_obj(1, rv=14)["metadata"]["name"]))  # gone unseen
    assert reg.jobs == {} and reg._order == [] and reg._ordered == set()


def test_registry_maps_batch_keys_for_progress() -> None:
    reg = Registry()
    reg.observe_batch(batch(["normal"], name="my-batch"))
    assert reg.keys["1111111122223333"[:14]] == ("ns", "my-batch")


def test_initial_entries_once_per_job_and_idempotent() -> None:
    b = batch(["normal", "low"])
    spec = BatchSpec.model_validate(b["spec"])
    s = initial_entries(b, spec, BatchStatus())
    assert s is not None and s.batchId == "batch_0123456789abcd00"
    assert [(j.jobId, j.jobName, j.status) for j in s.jobs] == [
        ("job_0123456789abcd01", "job-0123456789abcd01", "queued"),
        ("job_0123456789abcd02", "job-0123456789abcd02", "queued"),
    ]
    assert initial_entries(b, spec, s) is None


def test_cancel_indexes() -> None:
    spec = BatchSpec.model_validate({"jobs": [JOB, JOB, JOB], "cancelJobs": [2]})
    assert cancel_indexes(spec) == {2}
    assert cancel_indexes(spec.model_copy(update={"cancel": True})) == {0, 1, 2}


def test_expiry_is_completion_plus_retention() -> None:
    s = BatchStatus(
        jobs=[
            JobStatus(index=0, jobId="j", jobName="j", status="completed", completedAt="2026-01-21T12:00:00Z")
        ]
    )
    assert stamp_expiry(s, 86400).jobs[0].expiresAt == "2026-01-22T12:00:00Z"


def test_events_for_transitions_only() -> None:
    old = BatchStatus(jobs=[JobStatus(index=0, jobId="j", jobName="j")], phase="Running")
    new = old.model_copy(deep=True)
    assert transitions(old, new) == []
    new.jobs[0].status = "completed"
    new.phase = "Succeeded"
    assert [r for _, r, _ in transitions(old, new)] == ["JobCompleted", "BatchSucceeded"]


def test_which_job_events_read_and_write_status() -> None:
    """A Job event costs a status read only when it can change the job's entry."""
    reg = Registry()
    reconciler = Reconciler(None, Settings(), reg, None)  # type: ignore[arg-type]  # only the registry is used

    def needs(job: dict) -> bool:
        info = JobInfo.of(job)
        assert info is not None
        return reconciler.needs_update(info)

    assert needs(job_obj(0, rv=1))  # batch not seen yet: look
    body = batch(["normal", "high"])
    reg.observe_batch(body)
    assert not needs(job_obj(0, rv=1))  # a new Job before the entries exist: nothing to map yet
    assert needs(job_obj(0, rv=2, suspend=False, finished="Complete"))
    entries = [
        JobStatus(index=i, jobId=f"job_0123456789abcd0{i + 1}", jobName="j", status=st)
        for i, st in enumerate(("queued", "completed"))
    ]
    body["status"] = BatchStatus(jobs=entries).model_dump(mode="json", exclude_none=True)
    body["metadata"]["resourceVersion"] = "5"
    reg.observe_batch(body)
    assert not needs(job_obj(0, rv=3))  # queued and still suspended
    assert needs(job_obj(0, rv=4, suspend=False))  # admitted: processing
    assert needs(job_obj(0, rv=5, suspend=False, finished="Failed"))
    assert not needs(job_obj(1, rv=6, suspend=False, finished="Complete"))  # already terminal


def test_the_registry_keeps_the_tenant_of_each_batch_not_its_body() -> None:
    registry = Registry()
    labelled = batch(["normal"], "b")
    labelled["metadata"]["labels"] = {ids.TENANT_LABEL: "acme-media"}
    registry.observe_batch(labelled)
    registry.observe_batch(batch(["normal"], "plain"))
    assert registry.tenant_of("ExtractionBatch", "ns", "b") == "acme-media"
    assert registry.tenant_of("ExtractionBatch", "ns", "plain") is None
    assert registry.tenant_of("Pod", "ns", "b") is None
