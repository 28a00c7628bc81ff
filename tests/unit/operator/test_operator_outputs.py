"""Which store entries are outputs of a gone batch (``outputs.orphaned``), and a batch's outputs."""

from __future__ import annotations

from audio_extract_operator.outputs import job_ids, orphaned

NOW = 1_000_000.0
LIVE = "0123456789abcd"


def test_only_old_outputs_of_unknown_batches_are_orphans() -> None:
    entries = [
        (f"job_{LIVE}01", 0.0),  # its batch exists
        ("job_fedcba9876543201", 0.0),  # gone, old
        ("job_fedcba9876543202", NOW - 10),  # gone, but too recent to judge
        ("uploads", 0.0),
        ("job_ffffffffffffff00", 0.0),  # not a job id this service issues (index 0 is the batch's)
        (".job_fedcba9876543203.part", 0.0),
        ("lost+found", 0.0),
    ]
    assert orphaned(entries, {LIVE}, NOW, grace=3600) == ["job_fedcba9876543201"]
    assert orphaned(entries, {LIVE}, NOW, grace=0) == ["job_fedcba9876543201", "job_fedcba9876543202"]


def test_a_batchs_outputs_are_named_by_its_key() -> None:
    body = {
        "metadata": {"name": f"batch-{LIVE}00", "uid": "u"},
        "spec": {"jobs": [{}, {}, {}]},
    }
    assert job_ids(body) == [f"job_{LIVE}01", f"job_{LIVE}02", f"job_{LIVE}03"]
    uid = "fedcba98-7654-3210-0000-000000000000"
    kubectl = {"metadata": {"name": "talks", "uid": uid}, "spec": {"jobs": [{}]}}
    assert job_ids(kubectl) == ["job_fedcba9876543201"]
