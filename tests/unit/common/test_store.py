import pytest

from audio_extract_common.store import FilesystemStore, output_key


def test_a_failed_write_leaves_no_file(tmp_path):
    store = FilesystemStore(tmp_path)
    key = output_key("job_x", "a.mp3")
    with pytest.raises(RuntimeError), store.writer(key) as f:
        f.write(b"partial")
        raise RuntimeError("ffmpeg died")
    assert store.size(key) is None
    assert list((tmp_path / "job_x").iterdir()) == []


def test_a_second_write_replaces_the_first_whole(tmp_path):
    store = FilesystemStore(tmp_path)
    key = output_key("job_x", "a.mp3")
    for content in (b"first run", b"second"):
        with store.writer(key) as f:
            f.write(content)
    with store.open(key) as f:
        assert f.read() == b"second"


def test_keys_cannot_escape_the_root(tmp_path):
    with pytest.raises(ValueError):
        FilesystemStore(tmp_path / "root").size("../outside")


def test_stored_files_are_readable_by_other_users_of_the_store(tmp_path):
    store = FilesystemStore(tmp_path)
    with store.writer("uploads/upl_1") as f:
        f.write(b"video")
    with store.staged("job_1/out.mp3") as path:
        path.write_bytes(b"audio")
    for key in ("uploads/upl_1", "job_1/out.mp3"):
        assert (tmp_path / key).stat().st_mode & 0o777 == 0o644
