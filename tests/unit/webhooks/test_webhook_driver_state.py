"""The delivery driver's and the delivery loop's pure parts: the guarded status patch, which batches
need work (now or at a time), a Retry-After given as an HTTP date, and the backlog the metrics count."""

from __future__ import annotations

from datetime import UTC, datetime

from audio_extract_common.batch_status import Delivery
from audio_extract_common.retry_after import retry_after_seconds
from audio_extract_operator import metrics
from audio_extract_operator.webhooks.driver import needs_work, patch_ops
from support.webhook_batches import UID, job_id, make_store


def test_patch_ops_are_guarded_and_targeted():
    store = make_store(2, "https://h.example.com/")
    _, _, status = store.view()
    d = Delivery(event="job.completed", url="u", id="msg_1", timestamp="t")
    ops = patch_ops(UID, status, {1: d, None: d})
    assert ops[0] == {"op": "test", "path": "/metadata/uid", "value": UID}
    assert {"op": "test", "path": "/status/jobs/1/jobId", "value": job_id(1)} in ops
    assert [o["path"] for o in ops if o["op"] == "add"] == ["/status/webhook", "/status/jobs/1/webhook"]


def test_needs_work_filter():
    store = make_store(2, "https://h.example.com/", ["completed", "queued"])
    spec, status = store.obj["spec"], store.obj["status"]
    assert needs_work(spec, status)
    spec["webhook"] = None
    assert not needs_work(spec, status)
    status["jobs"][0]["webhook"] = {"state": "pending"}
    assert needs_work(spec, status)


def test_needs_work_with_now_counts_only_due_pending():
    store = make_store(1, "https://h.example.com/")
    spec, status = store.obj["spec"], store.obj["status"]
    spec["webhook"] = None
    spec["jobs"][0]["options"] = {"webhook": "https://j.example.com/"}
    status["jobs"][0]["webhook"] = {"state": "pending", "nextAttemptAt": "2026-01-21T12:00:10Z"}
    assert needs_work(spec, status)
    assert not needs_work(spec, status, "2026-01-21T12:00:09Z")
    assert needs_work(spec, status, "2026-01-21T12:00:10Z")


def test_retry_after_http_date():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("Thu, 01 Jan 2026 12:01:30 GMT", now) == 90
    assert retry_after_seconds("soon", now) is None and retry_after_seconds(None) is None


def test_backlog_counts_owed_and_pending_deliveries_only() -> None:
    spec = {"jobs": [{"options": {"webhook": "https://h.example.com/"}}, {}], "webhook": None}
    status = {
        "jobs": [
            {"index": 0, "status": "completed", "webhook": {"state": "pending"}},
            {"index": 1, "status": "failed"},  # no target: owes nothing
        ]
    }
    assert metrics.backlog({"spec": spec, "status": status}) == 1
    spec["webhook"] = "https://batch.example.com/"
    assert metrics.backlog({"spec": spec, "status": status}) == 3  # job 1 and batch.completed owed
    status["jobs"][0]["webhook"] = {"state": "delivered"}
    status["jobs"][1]["webhook"] = {"state": "failed"}
    status["webhook"] = {"state": "delivered"}
    assert metrics.backlog({"spec": spec, "status": status}) == 0
