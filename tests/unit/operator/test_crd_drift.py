"""The committed CRD (and the chart's copy) is exactly what the models render; the samples agree with it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from audio_extract_common.batch_spec import BatchSpec
from audio_extract_dev import crdgen

SAMPLES = crdgen.REPO_ROOT / "crds" / "samples"
# Invalid sample -> the field its refusal must name (both here and at `kubectl apply`).
INVALID = {
    "bad-format.yaml": "output.format",
    "flac-with-bitrate.yaml": "bitrate",
    "eleven-jobs.yaml": "jobs",
    "ftp-url.yaml": "source.url",
    "port-out-of-range.yaml": "source.url",
    "bitrate-out-of-range.yaml": "bitrate",
    "trim-out-of-order.yaml": "trim",
    "opus-sample-rate.yaml": "sampleRate",
    "bad-channels.yaml": "channels",
    "negative-audio-track.yaml": "audioTrack",
    "huge-audio-track.yaml": "audioTrack",
    "audio-track-without-language.yaml": "audioTrack",
}


@pytest.mark.parametrize("path", [crdgen.CRD_PATH, crdgen.CHART_CRD_PATH], ids=["crds", "chart"])
def test_committed_crd_matches_models(path: Path) -> None:
    assert path.read_text() == crdgen.render(), f"{path} is stale: run `make crds`"


def _walk(node: dict, where: str = ""):
    yield where, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{where}.{name}")
    if "items" in node:
        yield from _walk(node["items"], f"{where}[]")


def test_schema_is_structural_and_described() -> None:
    root = crdgen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for where, node in _walk(root):
        # The one exception a structural schema allows: an untyped node kept as given (audioTrack).
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields") is True, where
        assert not {"$ref", "anyOf", "title", "additionalProperties", "$defs"} & node.keys(), where
        if where.startswith((".spec", ".status")):
            assert node.get("description"), f"{where} has no description (kubectl explain shows it)"


def test_conditions_are_a_map_keyed_by_type() -> None:
    status = crdgen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_bitrate_rules_follow_the_format_table() -> None:
    output = crdgen.spec_schema()["properties"]["jobs"]["items"]["properties"]["output"]
    messages = {v["message"] for v in output["x-kubernetes-validations"]}
    assert "mp3 bitrate must be between 32k and 320k" in messages
    assert "opus bitrate must be between 6k and 510k" in messages
    assert not any(m.startswith(("flac bitrate", "wav bitrate")) for m in messages)


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLES.glob("*.yaml")))
def test_valid_samples_are_valid_specs(name: str) -> None:
    doc = yaml.safe_load((SAMPLES / name).read_text())
    spec = BatchSpec.model_validate(doc["spec"])
    assert len(spec.jobs) == 2


def test_every_invalid_sample_is_listed() -> None:
    assert {p.name for p in (SAMPLES / "invalid").glob("*.yaml")} == set(INVALID)


@pytest.mark.parametrize(("name", "field"), sorted(INVALID.items()))
def test_invalid_samples_are_refused_by_the_models(name: str, field: str) -> None:
    doc = yaml.safe_load((SAMPLES / "invalid" / name).read_text())
    with pytest.raises(ValidationError) as err:
        BatchSpec.model_validate(doc["spec"])
    # Model-level checks (bitrate vs format) carry the field in the message, not the location.
    said = [".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in err.value.errors()]
    assert any(field.split(".")[-1] in s for s in said), said


def test_cancel_jobs_must_name_existing_jobs() -> None:
    job = {"source": {"type": "url", "url": "http://example.org/a.mp4"}, "output": {"format": "wav"}}
    BatchSpec.model_validate({"jobs": [job, job], "cancelJobs": [1]})
    with pytest.raises(ValidationError):
        BatchSpec.model_validate({"jobs": [job, job], "cancelJobs": [2]})


def test_output_options_in_the_schema_follow_the_format_table() -> None:
    job = crdgen.spec_schema()["properties"]["jobs"]["items"]["properties"]
    output = job["output"]
    assert output["properties"]["sampleRate"]["enum"] == [
        8000,
        11025,
        12000,
        16000,
        22050,
        24000,
        32000,
        44100,
        48000,
    ]
    assert output["properties"]["channels"]["enum"] == [1, 2]
    opus = [v for v in output["x-kubernetes-validations"] if v.get("fieldPath") == ".sampleRate"]
    assert opus == [
        {
            "rule": "self.format != 'opus' || !has(self.sampleRate) || "
            "self.sampleRate in [8000, 12000, 16000, 24000, 48000]",
            "message": "opus sampleRate must be one of 8000, 12000, 16000, 24000, 48000",
            "fieldPath": ".sampleRate",
        }
    ]
    trim = output["properties"]["trim"]
    assert trim["x-kubernetes-validations"][0]["rule"] == (
        "!has(self.start) || !has(self.end) || self.start < self.end"
    )
    assert trim["properties"]["end"]["exclusiveMinimum"] is True
    # An index or {"language": ...}: untyped, with the checks that apply to either kind of value.
    track = job["source"]["properties"]["audioTrack"]
    assert "type" not in track and "anyOf" not in track
    assert {k: track[k] for k in ("minimum", "required", "maxProperties")} == {
        "minimum": 0,
        "required": ["language"],
        "maxProperties": 1,
    }
    assert "pattern" not in job["options"]["properties"]["filename"]  # sanitized, never refused
