import pytest
from pydantic import ValidationError

from audio_extract_common.resource import BatchSpec, ExtractionJob


def job(**over):
    body = {"source": {"type": "url", "url": "https://media.example/v.mp4"}, "output": {"format": "mp3"}}
    body.update(over)
    return body


def test_defaults_follow_the_contract():
    j = ExtractionJob.model_validate(job())
    assert (j.output.quality, j.output.normalize, j.output.preserveMetadata) == ("medium", False, False)
    assert j.options.priority == "normal"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (job(source={"type": "url", "url": "ftp://media.example/v.mp4"}), "source"),
        (job(source={"type": "url", "url": "https://user:pw@media.example/v.mp4"}), "source"),
        (job(source={"type": "url", "url": "https://media.example/" + "a" * 2048}), "source"),
        (job(source={"type": "upload"}), "source"),
        (job(output={"format": "flac", "bitrate": "192k"}), "output"),
        (job(output={"format": "mp3", "bitrate": "999k"}), "output"),
        (job(output={"format": "mp3", "bitrate": "192"}), "output"),
        (job(output={"format": "mp4"}), "output"),
        (job(options={"filename": "../etc/passwd"}), "options"),
        (job(extra=1), "extra"),
    ],
)
def test_invalid_jobs_are_refused_at_the_failing_field(body, where):
    with pytest.raises(ValidationError) as err:
        ExtractionJob.model_validate(body)
    assert err.value.errors()[0]["loc"][0] == where


def test_a_batch_holds_one_to_ten_jobs():
    BatchSpec.model_validate({"jobs": [job()] * 10})
    for n in (0, 11):
        with pytest.raises(ValidationError):
            BatchSpec.model_validate({"jobs": [job()] * n})
