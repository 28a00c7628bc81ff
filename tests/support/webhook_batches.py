"""A batch for the webhook driver's tests, kept as the API server keeps it: its status changes only
through the JSON patches the driver sends."""

from __future__ import annotations

import copy

import jsonpatch

from audio_extract_common.batch_spec import BatchSpec
from audio_extract_common.batch_status import BatchStatus
from audio_extract_operator.webhooks.driver import BatchRef

KEY = "00112233445566"
UID = "11111111-2222-4333-8444-555555555555"


def job_id(i: int) -> str:
    return f"job_{KEY}{i + 1:02x}"


class Store:
    """A batch object whose status changes only through JSON patches, like the API server's."""

    def __init__(self, spec: dict, status: dict) -> None:
        self.obj = {"metadata": {"uid": UID, "name": "b", "namespace": "ns"}, "spec": spec, "status": status}
        self.patches: list[list[dict]] = []
        self.fail_next = 0

    async def patch(self, namespace: str, name: str, ops: list[dict]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("API server unavailable")
        self.patches.append(ops)
        self.obj = jsonpatch.apply_patch(self.obj, ops)

    def view(self) -> tuple[BatchRef, BatchSpec, BatchStatus]:
        return (
            BatchRef("ns", "b", UID),
            BatchSpec.model_validate(self.obj["spec"]),
            BatchStatus.model_validate(copy.deepcopy(self.obj["status"])),
        )


def make_store(n: int, url: str, states: list[str] | None = None, own: dict[int, str] | None = None) -> Store:
    states = states or ["completed"] * n
    jobs_spec, jobs_status = [], []
    for i, st in enumerate(states):
        job = {"source": {"type": "url", "url": "https://m.example.com/v.mp4"}, "output": {"format": "mp3"}}
        if own and i in own:
            job["options"] = {"webhook": own[i]}
        jobs_spec.append(job)
        entry = {"index": i, "jobId": job_id(i), "jobName": job_id(i).replace("_", "-"), "status": st}
        if st == "completed":
            entry["completedAt"] = "2026-01-21T12:00:00Z"
            entry["outputFile"] = {
                "filename": "v.mp3",
                "path": f"{job_id(i)}/v.mp3",
                "size": 10,
                "format": "mp3",
            }
        elif st in ("failed", "cancelled"):
            entry["error"] = {"code": "CANCELLED" if st == "cancelled" else "INVALID_VIDEO", "message": "m"}
        jobs_status.append(entry)
    return Store(
        {"jobs": jobs_spec, "webhook": url},
        {"batchId": f"batch_{KEY}00", "jobs": jobs_status, "completedAt": "2026-01-21T12:00:01Z"},
    )
