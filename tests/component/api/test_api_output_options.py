"""Output options and file names through the API (docs/contract.md §2, §7): bad values are 400s naming the
field, good ones reach the ExtractionBatch as asked and are echoed in status; file names are
sanitized rather than refused, and downloads carry non-ASCII names in ``filename*`` (RFC 6266).
The Kubernetes side is an in-memory stand-in (api_fakekube)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from api_fakekube import FakeKube

from audio_extract_common import ids
from audio_extract_common.store import FilesystemStore

URL = "http://127.0.0.1/a.mp4"


def job(source: dict[str, Any] | None = None, options: dict[str, Any] | None = None, **output: Any) -> dict:
    return {
        "source": {"type": "url", "url": URL, **(source or {})},
        "output": {"format": "mp3", **output},
        **({"options": options} if options is not None else {}),
    }


@pytest.fixture
async def api(make_client) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(allow_cidrs="127.0.0.0/8") as c:
        c.kube = FakeKube().install(c.app)  # type: ignore[attr-defined]
        yield c


def fields(err: dict) -> list[str]:
    return [d["field"] for d in err["details"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (job(sampleRate=44101), "jobs[0].output.sampleRate"),
        (job(sampleRate=96000), "jobs[0].output.sampleRate"),
        (job(sampleRate="44100"), "jobs[0].output.sampleRate"),
        (job(sampleRate=True), "jobs[0].output.sampleRate"),
        ({**job(format="opus", sampleRate=44100)}, "jobs[0].output.sampleRate"),  # opus: 8/12/16/24/48 kHz
        (job(channels=0), "jobs[0].output.channels"),
        (job(channels=6), "jobs[0].output.channels"),
        (job(channels=1.5), "jobs[0].output.channels"),
        (job(trim={"start": 5, "end": 2}), "jobs[0].output.trim"),
        (job(trim={"start": 2, "end": 2}), "jobs[0].output.trim"),
        (job(trim={"start": -0.5}), "jobs[0].output.trim.start"),
        (job(trim={"end": 0}), "jobs[0].output.trim.end"),
        (job(trim={"start": "1"}), "jobs[0].output.trim.start"),
        (job(trim={"start": 1, "length": 2}), "jobs[0].output.trim.length"),
        (job(trim=[0, 1]), "jobs[0].output.trim"),
    ],
)
async def test_bad_output_options_are_invalid_output(api, expect_error, body, field):
    err = expect_error(
        await api.post("/v1/batch", json={"jobs": [job(), body]}),
        400,
        "INVALID_REQUEST" if field.endswith("length") else "INVALID_OUTPUT",
    )
    assert fields(err) == [field.replace("jobs[0]", "jobs[1]")], err


@pytest.mark.parametrize(
    "track",
    [
        -1,
        1024,
        10**400,
        1.5,
        True,
        "eng",
        "1",
        {"language": "english"},
        {"language": "EN"},
        {"lang": "eng"},
        {"language": "eng", "index": 0},
        {},
        [0],
    ],
)
async def test_bad_audio_tracks_are_invalid_source(api, expect_error, track):
    err = expect_error(await api.post("/v1/extract", json=job({"audioTrack": track})), 400, "INVALID_SOURCE")
    assert fields(err) == ["source.audioTrack"], err
    assert "language" in err["details"][0]["message"]


NAMES = ["../../etc/passwd", "Café \u2013 日本語", "a/b\\c", "CON", "talk.mp3", "\x00\x1f", "", "x" * 300]


async def test_any_filename_is_accepted_as_asked(api):
    r = await api.post("/v1/batch", json={"jobs": [job(options={"filename": n}) for n in NAMES]})
    assert r.status_code == 202, r.text
    batch = next(iter(api.kube.objects.values()))  # type: ignore[attr-defined]
    assert [j["options"]["filename"] for j in batch["spec"]["jobs"]] == NAMES  # the worker sanitizes
    view = (await api.get(f"/v1/status/{r.json()['data']['jobs'][1]['jobId']}")).json()["data"]
    assert view["options"]["filename"] == "Café \u2013 日本語"


async def test_options_reach_the_batch_and_status_echoes_them(api):
    asked = job(
        {"audioTrack": {"language": "fra"}},
        format="opus",
        sampleRate=24000,
        channels=1,
        trim={"start": 1.5, "end": 30},
    )
    r = await api.post("/v1/extract", json=asked)
    assert r.status_code == 202, r.text
    job_id = r.json()["data"]["jobId"]
    spec_job = next(iter(api.kube.objects.values()))["spec"]["jobs"][0]  # type: ignore[attr-defined]
    assert spec_job["source"]["audioTrack"] == {"language": "fra"}
    assert {k: spec_job["output"][k] for k in ("sampleRate", "channels", "trim")} == {
        "sampleRate": 24000,
        "channels": 1,
        "trim": {"start": 1.5, "end": 30},
    }
    options = (await api.get(f"/v1/status/{job_id}")).json()["data"]["options"]
    assert {k: options[k] for k in ("sampleRate", "channels", "trim", "audioTrack")} == {
        "sampleRate": 24000,
        "channels": 1,
        "trim": {"start": 1.5, "end": 30},
        "audioTrack": {"language": "fra"},
    }
    r = await api.post("/v1/extract", json=job({"audioTrack": 0}, trim={"end": 2.5}))
    options = (await api.get(f"/v1/status/{r.json()['data']['jobId']}")).json()["data"]["options"]
    assert (options["audioTrack"], options["trim"], options["sampleRate"], options["channels"]) == (
        0,
        {"end": 2.5},
        None,
        None,
    )


async def complete(api: httpx.AsyncClient, filename: str, data: bytes = b"ID3 audio") -> str:
    """Submit one job and finish it as the operator would, with ``filename`` as the worker named it."""
    r = await api.post("/v1/extract", json=job())
    job_id = r.json()["data"]["jobId"]
    obj = next(
        o
        for o in api.kube.objects.values()  # type: ignore[attr-defined]
        if o["metadata"]["labels"][ids.KEY_LABEL] == ids.parse_job_id(job_id)[0]
    )
    path = f"{job_id}/{filename}"
    with FilesystemStore(api.app.state.services.settings.store_root).writer(path) as f:  # type: ignore[attr-defined]
        f.write(data)
    obj["status"] = {
        "jobs": [
            {
                "index": 0,
                "jobId": job_id,
                "jobName": "j",
                "status": "completed",
                "progress": 100,
                "expiresAt": "2999-01-01T00:00:00Z",
                "outputFile": {
                    "filename": filename,
                    "path": path,
                    "size": len(data),
                    "format": "mp3",
                    "sampleRate": 22050,
                    "channels": 1,
                    "duration": 1.5,
                    "bitrate": "128k",
                },
            }
        ]
    }
    return job_id


@pytest.mark.parametrize(
    ("filename", "disposition"),
    [
        ("talk.mp3", 'attachment; filename="talk.mp3"'),
        (
            "Café 日本.mp3",
            "attachment; filename=\"Cafe __.mp3\"; filename*=UTF-8''Caf%C3%A9%20%E6%97%A5%E6%9C%AC.mp3",
        ),
    ],
)
async def test_downloads_name_the_file_per_rfc_6266(api, filename, disposition):
    job_id = await complete(api, filename)
    r = await api.get(f"/v1/download/{job_id}")
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"] == disposition
    star = disposition.partition("filename*=UTF-8''")[2]
    assert not star or unquote(star) == filename
    out = (await api.get(f"/v1/status/{job_id}")).json()["data"]["outputFile"]
    assert (out["filename"], out["sampleRate"], out["channels"]) == (filename, 22050, 1)
