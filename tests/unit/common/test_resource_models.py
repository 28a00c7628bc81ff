import pytest
from pydantic import ValidationError

from audio_extract_common.batch_spec import BatchSpec, ExtractionJob


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
        (job(source={"type": "url", "url": "https://media.example:65536/v.mp4"}), "source"),
        (job(source={"type": "url", "url": "https://media.example:0/v.mp4"}), "source"),
        (job(source={"type": "url", "url": "https://media.example/" + "a" * 2048}), "source"),
        (job(source={"type": "upload"}), "source"),
        (job(output={"format": "flac", "bitrate": "192k"}), "output"),
        (job(output={"format": "mp3", "bitrate": "999k"}), "output"),
        (job(output={"format": "mp3", "bitrate": "192"}), "output"),
        (job(output={"format": "mp4"}), "output"),
        (job(options={"filename": "x" * 1025}), "options"),
        (job(output={"format": "opus", "sampleRate": 44100}), "output"),
        (job(output={"format": "mp3", "sampleRate": 96000}), "output"),
        (job(output={"format": "mp3", "sampleRate": True}), "output"),
        (job(output={"format": "mp3", "channels": 6}), "output"),
        (job(output={"format": "mp3", "channels": "2"}), "output"),
        (job(output={"format": "mp3", "trim": {"start": 5, "end": 2}}), "output"),
        (job(output={"format": "mp3", "trim": {"start": -1}}), "output"),
        (job(output={"format": "mp3", "trim": {"end": 0}}), "output"),
        (job(output={"format": "mp3", "trim": {"start": "1"}}), "output"),
        (job(output={"format": "mp3", "trim": {"duration": 1}}), "output"),
        (job(source={"type": "url", "url": "https://media.example/v.mp4", "audioTrack": -1}), "source"),
        (job(source={"type": "url", "url": "https://media.example/v.mp4", "audioTrack": "eng"}), "source"),
        (
            job(
                source={"type": "url", "url": "https://media.example/v.mp4", "audioTrack": {"language": "en"}}
            ),
            "source",
        ),
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


def test_output_options_and_audio_track_as_the_contract_writes_them():
    j = ExtractionJob.model_validate(
        job(
            source={"type": "url", "url": "https://media.example/v.mp4", "audioTrack": {"language": "eng"}},
            output={"format": "opus", "sampleRate": 16000, "channels": 1, "trim": {"start": 1.5, "end": 10}},
            options={"filename": "../Café/日本.opus"},
        )
    )
    out = j.output
    assert (out.sampleRate, out.channels, out.trim.start, out.trim.end) == (16000, 1, 1.5, 10)
    assert j.source.audioTrack.language == "eng"
    assert j.options.filename == "../Café/日本.opus"  # kept as asked; the worker sanitizes it
    assert (
        ExtractionJob.model_validate(
            job(source={"type": "upload", "file": "upl_0123456789abcdef", "audioTrack": 2})
        ).source.audioTrack
        == 2
    )
    only_end = ExtractionJob.model_validate(job(output={"format": "wav", "trim": {"end": 0.5}}))
    assert only_end.output.trim.start is None
