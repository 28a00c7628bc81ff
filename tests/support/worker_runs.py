"""A worker job's spec and inputs (``job_spec``, ``upload``), and its run: in process through
``run_job`` (``InProcess``) or as its own process (``ProcessRun``), with what it left in the store
and scratch directories (``Run``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audio_extract_common.results import WorkerResult
from audio_extract_common.store import FilesystemStore
from audio_extract_worker.job import run_job
from audio_extract_worker.progress import ProgressReporter
from audio_extract_worker.settings import WorkerSettings
from audio_extract_worker.spec import WorkerJob

JOB_ID = "job_00c0ffee00c0ffee"
BATCH_ID = "batch_00c0ffee00c0ff00"


@dataclass
class Run:
    result: WorkerResult
    store: Path
    scratch: Path

    @property
    def output_path(self) -> Path:
        assert self.result.output is not None, self.result.error
        return self.store / self.result.output.path

    def store_files(self) -> list[Path]:
        return sorted(p for p in self.store.rglob("*") if p.is_file() and "uploads" not in p.parts)

    def scratch_files(self) -> list[Path]:
        return sorted(p for p in self.scratch.rglob("*") if p.is_file())


def job_spec(source: dict[str, Any], output: dict[str, Any], options: dict[str, Any] | None = None) -> dict:
    return {
        "jobId": JOB_ID,
        "batchId": BATCH_ID,
        "source": source,
        "output": output,
        "options": options or {},
    }


def upload(store: Path, source: Path, file_id: str = "upl_00000000000000aa") -> dict[str, str]:
    FilesystemStore(store).put_file(f"uploads/{file_id}", source)
    return {"type": "upload", "file": file_id}


class InProcess:
    """Runs a job through ``run_job`` (the entry point's code, minus process start-up)."""

    def __init__(self, store: Path, scratch: Path) -> None:
        self.store = store
        self.scratch = scratch

    def upload(self, source: Path, file_id: str = "upl_00000000000000aa") -> dict[str, str]:
        return upload(self.store, source, file_id)

    def run(self, spec: dict[str, Any], **settings: Any) -> Run:
        s = WorkerSettings(
            **{
                "store_root": self.store,
                "scratch_dir": self.scratch,
                "connect_timeout": 2,
                "read_timeout": 2,
                **settings,
            }
        )
        reporter = ProgressReporter(JOB_ID, None, None)
        result = run_job(WorkerJob.model_validate(spec), s, FilesystemStore(self.store), reporter)
        return Run(result, self.store, self.scratch)


@dataclass
class ProcessRun(Run):
    exit_code: int = 0
    stderr: str = ""
    result_text: str = ""

    @property
    def peak_rss_mib(self) -> float:
        """The worker's own peak RSS, from its last log line."""
        finished = [
            json.loads(line.split(": ", 1)[1]) for line in self.stderr.splitlines() if '"finished"' in line
        ]
        return finished[-1]["peakRssKiB"] / 1024
