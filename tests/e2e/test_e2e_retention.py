"""Retention through the installed release, with short values: an output is downloadable, then
expires (410 FILE_EXPIRED, file gone from the store), then the batch record goes."""

from __future__ import annotations

import pytest
from system import System

from support.media_server import MediaServer
from support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

SYSTEM_VALUES = {
    "operator": {
        "outputRetentionSeconds": 3,
        "recordRetentionSeconds": 15,
        "env": {"AUDIO_EXTRACT_OPERATOR_RETENTION__INTERVAL": "1"},
    }
}


def test_outputs_expire_then_the_record_goes(system: System, media: MediaServer) -> None:
    job = {"source": {"type": "url", "url": f"{media.url}/av.mp4"}, "output": {"format": "mp3"}}
    reply = system.api.post("/v1/batch", json={"jobs": [job]})
    assert reply.status_code == 202, reply.text
    batch = reply.json()["data"]["batchId"]
    (job_id,) = [j["jobId"] for j in reply.json()["data"]["jobs"]]
    assert system.follow([job_id])[job_id]["status"] == "completed"
    assert system.api.get(f"/v1/download/{job_id}").status_code == 200
    assert system.stored(f"{job_id}/") == [f"{job_id}/audio.mp3"]  # in the release's bucket prefix

    def expired() -> bool:
        return system.api.get(f"/v1/download/{job_id}").status_code == 410

    wait_for(expired, 30, "the output to expire")
    gone = system.api.get(f"/v1/download/{job_id}").json()
    assert gone["error"]["code"] == "FILE_EXPIRED"
    assert system.api.get(f"/v1/status/{job_id}").json()["data"]["expired"] is True
    # the API answers 410 from expiresAt on; the operator's retention pass removes the object
    wait_for(lambda: not system.stored(f"{job_id}/"), 30, "the output removed from the store")
    # then the record itself: the batch answers like any unknown one
    wait_for(lambda: system.api.get(f"/v1/batch/{batch}").status_code == 404, 60, "the record to go")
    assert system.api.get(f"/v1/status/{job_id}").json()["error"]["code"] == "JOB_NOT_FOUND"
