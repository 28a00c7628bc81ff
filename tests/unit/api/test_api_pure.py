"""Pure parts of the API: field paths and error codes, ranges, download decisions, views,
queue counting and admission, idempotency keys, the rate limiter's arithmetic, key files."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime

import pytest

from audio_extract_api import bodies, downloads, views
from audio_extract_api.auth import KeyStore, RateLimiter, parse_keys
from audio_extract_api.errors import (
    API_ERRORS,
    ApiError,
    FileExpired,
    InvalidOutput,
    InvalidRequest,
    InvalidSource,
    JobFailed,
    JobNotCompleted,
    QueueFull,
    RangeNotSatisfiable,
    RateLimited,
    Unauthorized,
)
from audio_extract_api.queue_capacity import QueueView, queued_jobs
from audio_extract_api.routes.extract import estimated_time
from audio_extract_api.submit import check_idempotency_key, idempotent_batch_key
from audio_extract_common import ids
from audio_extract_common.batch_status import JobStatus


@pytest.mark.parametrize(
    "loc,expected",
    [
        (("jobs", 3, "output", "bitrate"), "jobs[3].output.bitrate"),
        (("jobs",), "jobs"),
        (("output", "format"), "output.format"),
        (("webhook",), "webhook"),
        (("jobs", 0), "jobs[0]"),
    ],
)
def test_field_path(loc, expected):
    assert bodies.field_path(loc) == expected


@pytest.mark.parametrize(
    "loc,etype,code",
    [
        (("jobs", 1, "source", "url"), "value_error", InvalidSource),
        (("source", "url"), "value_error", InvalidSource),
        (("jobs", 1, "output", "bitrate"), "string_pattern_mismatch", InvalidOutput),
        (("output",), "missing", InvalidOutput),
        (("jobs", 1, "output", "foo"), "extra_forbidden", InvalidRequest),
        (("jobs", 1), "model_type", InvalidRequest),
        (("jobs",), "too_short", InvalidRequest),
        (("webhook",), "value_error", InvalidRequest),
        (("jobs", 0, "options", "priority"), "enum", InvalidRequest),
    ],
)
def test_error_code_by_location(loc, etype, code):
    assert bodies._code_of(loc, etype) is code


def test_most_general_code_wins_and_all_fields_are_listed():
    with pytest.raises(InvalidRequest) as e:
        bodies.raise_validation(
            [
                {"loc": ("jobs", 0, "output", "format"), "type": "enum", "msg": "bad"},
                {"loc": ("jobs", 1, "source", "url"), "type": "value_error", "msg": "Value error, no"},
                {"loc": ("extra",), "type": "extra_forbidden", "msg": "Extra inputs are not permitted"},
            ]
        )
    assert [d["field"] for d in e.value.details] == ["jobs[0].output.format", "jobs[1].source.url", "extra"]
    assert e.value.details[1]["message"] == "no"


def test_json_depth_and_syntax():
    assert bodies.parse_json(b'{"a": [1, {"b": 2}]}', 4) == {"a": [1, {"b": 2}]}
    with pytest.raises(InvalidRequest):
        bodies.parse_json(b'{"a": [[[[1]]]]}', 4)
    for raw in (b"", b"  ", b"{", b"\xff", b"[" * 50_000 + b"]" * 50_000):
        with pytest.raises(InvalidRequest):
            bodies.parse_json(raw, 16)


def test_canonical_hash_ignores_key_order_and_whitespace():
    assert bodies.canonical_hash({"a": 1, "b": [1, 2]}) == bodies.canonical_hash({"b": [1, 2], "a": 1})
    assert bodies.canonical_hash({"a": 1}) != bodies.canonical_hash({"a": 2})


@pytest.mark.parametrize(
    "header,expected",
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=90-", (90, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=50-500", (50, 99)),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=-", None),
        # More digits than Python parses (4,300): a position past any file, not a 500.
        ("bytes=-" + "9" * 5000, (0, 99)),
        ("bytes=0-" + "9" * 5000, (0, 99)),
    ],
)
def test_parse_range(header, expected):
    assert downloads.parse_range(header, 100) == expected


@pytest.mark.parametrize(
    "header", ["bytes=100-", "bytes=100-200", "bytes=9-3", "bytes=-0", "bytes=" + "9" * 5000 + "-"]
)
def test_unsatisfiable_range(header):
    with pytest.raises(RangeNotSatisfiable) as e:
        downloads.parse_range(header, 100)
    assert e.value.status == 416 and e.value.headers["Content-Range"] == "bytes */100"


def _entry(**fields):
    return JobStatus.model_validate({"index": 0, "jobId": "job_x", "jobName": "batch-x-0", **fields})


def test_download_decision_by_state():
    out = {"filename": "a.mp3", "path": "job_x/a.mp3", "size": 1, "format": "mp3"}
    for st in (_entry(status="queued"), _entry(status="processing"), _entry(), None):
        with pytest.raises(JobNotCompleted) as e:
            downloads.completed_output(st)
        assert e.value.status == 202
    with pytest.raises(JobFailed) as e:
        downloads.completed_output(_entry(status="failed", error={"code": "TIMEOUT", "message": "slow"}))
    assert (e.value.status, e.value.code, e.value.message) == (409, "TIMEOUT", "slow")
    with pytest.raises(JobFailed) as e:
        downloads.completed_output(_entry(status="cancelled"))
    assert e.value.code == "CANCELLED"
    with pytest.raises(FileExpired):
        downloads.completed_output(_entry(status="completed", outputFile=out, expired=True))
    with pytest.raises(FileExpired):
        downloads.completed_output(
            _entry(status="completed", outputFile=out, expiresAt="2000-01-01T00:00:00Z")
        )
    done = downloads.completed_output(
        _entry(status="completed", outputFile=out, expiresAt="2999-01-01T00:00:00Z")
    )
    assert done.model_dump(exclude_unset=True) == out


def _batch(key="0123456789abcd", status=None, jobs=2, name=None, labels=None):
    return {
        "metadata": {
            "name": name or ids.batch_object_name(key),
            "uid": "u",
            "labels": labels or {},
            "creationTimestamp": "2026-01-21T12:00:00Z",
        },
        "spec": {
            "jobs": [
                {
                    "source": {"type": "url", "url": "https://x/v.mp4"},
                    "output": {"format": "mp3"},
                    "options": {"priority": "high"},
                }
            ]
            * jobs,
            "webhook": "https://hooks.example/h",
        },
        **({"status": status} if status is not None else {}),
    }


def test_job_view_before_the_operator_wrote_status():
    v = views.job_view(_batch(), 1, "/audio-extract/v1")
    assert v["jobId"] == "job_0123456789abcd02" and v["batchId"] == "batch_0123456789abcd00"
    assert (v["status"], v["progress"], v["currentStep"], v["outputFile"], v["error"]) == (
        "queued",
        0,
        None,
        None,
        None,
    )
    assert v["options"] == {
        "filename": None,
        "webhook": "https://hooks.example/h",
        "priority": "high",
        "sampleRate": None,
        "channels": None,
        "trim": None,
        "audioTrack": None,
    }
    assert v["createdAt"] == "2026-01-21T12:00:00Z"


DELIVERED = {
    "event": "job.completed",
    "url": "https://hooks.example/h",
    "id": "msg_0123456789abcd01",
    "timestamp": "2026-01-21T12:30:00Z",
    "state": "delivered",
    "attempts": 1,
    "lastStatusCode": 200,
    "deliveredAt": "2026-01-21T12:30:01Z",
}


def test_job_view_completed_and_cancelled():
    now = datetime(2026, 1, 21, 13, 0, tzinfo=UTC)
    status = {
        "jobs": [
            {
                "index": 0,
                "jobId": "job_0123456789abcd01",
                "jobName": "batch-0123456789abcd00-0",
                "status": "completed",
                "progress": 100,
                "expiresAt": "2026-01-22T12:00:00Z",
                "webhook": DELIVERED,
                "outputFile": {
                    "filename": "a.mp3",
                    "path": "p",
                    "size": 3,
                    "format": "mp3",
                    "bitrate": "192k",
                },
            },
            {
                "index": 1,
                "jobId": "job_0123456789abcd02",
                "jobName": "batch-0123456789abcd00-1",
                "status": "cancelled",
            },
        ]
    }
    done = views.job_view(_batch(status=status), 0, "/p", now)
    assert done["downloadUrl"] == "/p/download/job_0123456789abcd01" == done["outputFile"]["url"]
    assert done["outputFile"]["bitrate"] == "192k" and done["expired"] is False
    assert done["webhook"] == DELIVERED
    later = datetime(2026, 1, 23, tzinfo=UTC)
    assert views.job_view(_batch(status=status), 0, "/p", later)["expired"] is True
    cancelled = views.job_view(_batch(status=status), 1, "/p", now)
    assert cancelled["error"]["code"] == "CANCELLED" and cancelled["downloadUrl"] is None
    batch = views.batch_view(_batch(status=status), "/p", now)
    assert (batch["completed"], batch["cancelled"], batch["queued"], batch["totalJobs"]) == (1, 1, 0, 2)


def test_views_read_a_status_with_fields_they_do_not_know():
    """A newer operator's status (fields added at every level) gives the views it always gave."""
    now = datetime(2026, 1, 21, 13, 0, tzinfo=UTC)
    job = {
        "index": 0,
        "jobId": "job_0123456789abcd01",
        "jobName": "batch-0123456789abcd00-0",
        "status": "failed",
        "currentStep": "analyzing_video",
        "progress": 12,
        "inputFile": {"name": "v.mp4", "size": 9, "duration": 1.5, "format": "mp4"},
        "error": {"code": "NO_AUDIO_STREAM", "message": "no audio", "details": "video only"},
        "webhook": {**DELIVERED, "event": "job.failed"},
    }
    status = {"batchId": "batch_0123456789abcd00", "phase": "Failed", "jobs": [job], "webhook": DELIVERED}
    newer = {
        **status,
        "shards": 3,
        "jobs": [
            {
                **job,
                "attempt": 2,
                "inputFile": {**job["inputFile"], "codec": "h264"},
                "error": {**job["error"], "retryable": False},
                "webhook": {**job["webhook"], "signatureVersion": "v2"},
            }
        ],
        "webhook": {**DELIVERED, "signatureVersion": "v2"},
    }
    for view in (views.batch_view, lambda obj, *a: views.job_view(obj, 0, *a)):
        assert view(_batch(status=newer, jobs=1), "/p", now) == view(_batch(status=status, jobs=1), "/p", now)
    failed = views.job_view(_batch(status=newer, jobs=1), 0, "/p", now)
    assert (failed["status"], failed["currentStep"], failed["error"]) == (
        "failed",
        "analyzing_video",
        {"code": "NO_AUDIO_STREAM", "message": "no audio", "details": "video only"},
    )
    assert failed["inputFile"] == {"name": "v.mp4", "size": 9, "duration": 1.5, "format": "mp4"}
    assert views.batch_view(_batch(status=newer, jobs=1), "/p", now)["webhookDelivery"] == DELIVERED


def test_kubectl_applied_batch_takes_ids_from_its_label():
    obj = _batch(name="hand-made", labels={ids.KEY_LABEL: "fedcba98765432"})
    assert views.batch_id_of(obj) == "batch_fedcba9876543200"
    assert views.job_id_of(obj, 0) == "job_fedcba9876543201"


def test_queued_jobs_counts_spec_until_status_exists():
    assert queued_jobs(_batch(jobs=3)) == 3
    st = {
        "jobs": [
            {"index": 0, "status": "processing"},
            {"index": 1, "status": "queued"},
            {"index": 2, "status": "completed"},
        ]
    }
    assert queued_jobs(_batch(jobs=3, status=st)) == 1


async def test_admission_is_exact_within_one_event_loop():
    q = QueueView(kube=None, capacity=10, retry_after=3, sync_timeout=1)  # type: ignore[arg-type]
    q._synced.set()
    q._task = asyncio.get_running_loop().create_future()  # "started": no watch in a unit test
    q.counts = {"batch-a": 4}
    admitted, refused = [], []

    async def submit(name: str, jobs: int) -> None:
        try:
            async with q.admit(name, jobs):
                await asyncio.sleep(0)  # the create call: other submissions interleave here
                admitted.append(jobs)
        except QueueFull as e:
            assert e.headers["Retry-After"] == "3"
            refused.append(jobs)

    await asyncio.gather(*(submit(f"b{i}", 1 + i % 3) for i in range(50)))
    assert sum(admitted) + 4 <= 10 and sum(admitted) >= 4  # never over; nearly full
    # a failed create gives its room back; the watch turns a reservation into a count
    q.capacity = 100
    with pytest.raises(RuntimeError):
        async with q.admit("boom", 1):
            raise RuntimeError
    assert "boom" not in q.reserved
    q._apply({"metadata": {"name": "b0"}, "spec": {"jobs": [{}]}})
    assert "b0" not in q.reserved and q.counts["b0"] == 1
    q._task.cancel()


def test_idempotency_key_scope_and_syntax():
    a = idempotent_batch_key(b"s", "alice", "k1")
    assert len(a) == 14 and a == idempotent_batch_key(b"s", "alice", "k1")
    assert a != idempotent_batch_key(b"s", "bob", "k1") and a != idempotent_batch_key(b"s", "alice", "k2")
    assert a != idempotent_batch_key(b"t", "alice", "k1")  # the server secret keys it
    assert check_idempotency_key(None) is None and check_idempotency_key("abc-123_X") == "abc-123_X"
    for bad in ("", "a b", "x" * 256, "é"):
        with pytest.raises(InvalidRequest):
            check_idempotency_key(bad)


def test_estimated_time_heuristic():
    assert estimated_time(0, 20, 5) == 20
    assert estimated_time(12, 20, 5) == 80


def test_rate_limiter_token_bucket():
    rl = RateLimiter(per_minute=60, burst=2)
    rl.check("a", now=0.0)
    rl.check("a", now=0.0)
    with pytest.raises(RateLimited) as e:
        rl.check("a", now=0.0)
    assert e.value.headers["Retry-After"] == "1"
    rl.check("b", now=0.0)  # other key, own bucket
    rl.check("a", now=1.0)  # one token per second refilled
    RateLimiter(per_minute=0).check("a")  # disabled


def test_key_file_formats(tmp_path):
    f = tmp_path / "keys"
    d1, d2 = hashlib.sha256(b"one").hexdigest(), hashlib.sha256(b"two").hexdigest()
    d3, d4 = hashlib.sha256(b"acme-key").hexdigest(), hashlib.sha256(b"ops-key").hexdigest()
    f.write_text(
        f"# comment\none {d1}\ntwo {d2.upper()} read  # trailing\nbad nothex\n\n"
        f"three {d3} tenant=acme read,write\nfour {d4} admin\n"
        f"five {d4} tenant=-not-a-label\n"
    )
    entries = parse_keys(f)
    assert [(e.key_id, e.scopes, e.tenant) for e in entries] == [
        ("one", frozenset({"read", "write"}), "one"),  # the key id is its own tenant
        ("two", frozenset({"read"}), "two"),
        ("three", frozenset({"read", "write"}), "acme"),
        ("four", frozenset({"read", "write", "admin"}), "four"),  # admin implies read and write
    ]
    store = KeyStore(f, reload_seconds=60)
    assert store.authenticate("two").scopes == frozenset({"read"})
    three, four = store.authenticate("acme-key"), store.authenticate("ops-key")
    assert (three.tenant, three.sees("acme"), three.sees("three"), three.sees(None)) == (
        "acme",
        True,
        False,
        False,
    )
    assert (four.admin, four.sees("acme"), four.sees(None)) == (True, True, True)
    for bad in (None, "", "three", "nothex"):
        with pytest.raises(Unauthorized):
            store.authenticate(bad)
    with pytest.raises(Unauthorized):  # no key file: nothing authenticates
        KeyStore(None, 60).authenticate("one")


def test_every_api_error_is_in_the_one_list():
    def subclasses(cls: type) -> list[type]:
        return [c for s in cls.__subclasses__() for c in (s, *subclasses(s))]

    assert {c for c in subclasses(ApiError) if c is not JobFailed} <= set(API_ERRORS)
