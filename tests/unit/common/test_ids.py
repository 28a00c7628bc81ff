import pytest

from audio_extract_common import ids


def test_job_id_names_its_batch_without_lookup():
    key = ids.new_key()
    for index in range(ids.MAX_JOBS):
        job = ids.job_id(key, index)
        assert ids.JOB_ID_RE.match(job)
        assert ids.parse_job_id(job) == (key, index)
    assert ids.parse_batch_id(ids.batch_id(key)) == key
    assert ids.batch_key(ids.batch_object_name(key), "ignored-uid") == key


def test_object_names_are_dns_labels():
    key = ids.new_key()
    name = ids.job_object_name(ids.job_id(key, 9))
    assert "_" not in name and len(name) <= 63 and name == f"job-{key}0a"


def test_foreign_batch_names_take_their_key_from_the_uid():
    assert ids.batch_key("my-batch", "0F1E2D3C-4B5A-6978-8796-a5b4c3d2e1f0") == "0f1e2d3c4b5a69"


@pytest.mark.parametrize("job", ["job_a1b2c3d4e5f6g7h8", "job_0000000000000000", "job_00000000000000ff"])
def test_well_formed_but_foreign_job_ids_do_not_parse(job):
    assert ids.JOB_ID_RE.match(job)
    assert ids.parse_job_id(job) is None


def test_index_out_of_range_is_refused():
    with pytest.raises(ValueError):
        ids.job_id(ids.new_key(), 10)


def test_the_derived_key_ignores_the_label_the_recorded_key_prefers_it():
    named = {"metadata": {"name": "batch-0123456789abcd00", "uid": "ffffffff-ffff"}}
    assert ids.derived_batch_key(named) == ids.recorded_batch_key(named) == "0123456789abcd"
    applied = {"metadata": {"name": "hand-made", "uid": "FEDCBA98-7654-3210", "labels": {}}}
    assert ids.derived_batch_key(applied) == ids.recorded_batch_key(applied) == "fedcba98765432"
    applied["metadata"]["labels"] = {ids.KEY_LABEL: "00112233445566"}
    assert ids.derived_batch_key(applied) == "fedcba98765432"
    assert ids.recorded_batch_key(applied) == "00112233445566"
