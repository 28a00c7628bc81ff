"""What the command shows: tables and status words built from the API's views (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text

from audio_extract_common.api_models import BatchView, JobView

TERMINAL = frozenset({"completed", "failed", "cancelled"})
STYLE = {"completed": "green", "failed": "red", "cancelled": "yellow", "processing": "cyan", "queued": "dim"}


@dataclass(frozen=True)
class Tracked:
    """A job this command follows: what the user called its source, and its ids."""

    label: str
    job_id: str
    batch_id: str


def human_size(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(size)


def state_text(view: JobView | None) -> str:
    """``queued``, ``processing: extracting_audio``, ``failed: NO_AUDIO_STREAM``, ``completed``."""
    if view is None:
        return "submitted"
    if view.status == "processing" and view.currentStep:
        return f"processing: {view.currentStep}"
    if view.status in ("failed", "cancelled") and view.error:
        return f"{view.status}: {view.error.code}"
    return view.status


def succeeded(views: Sequence[JobView]) -> bool:
    return all(v.status == "completed" for v in views)


def summary_table(tracked: Sequence[Tracked], views: dict[str, JobView], title: str | None = None) -> Table:
    """One row per job: source, job id, status, output (name and size) or error (code and message)."""
    table = Table(title=title, title_justify="left")
    for column in ("Source", "Job", "Status", "Output / error"):
        table.add_column(column, overflow="fold")
    for t in tracked:
        view = views.get(t.job_id)
        status = view.status if view else "unknown"
        if view and view.outputFile and view.status == "completed":
            detail = f"{view.outputFile.filename} ({human_size(view.outputFile.size)})"
        elif view and view.error:
            detail = f"{view.error.code}: {view.error.message or ''}".rstrip(": ")
        else:
            detail = ""
        table.add_row(t.label, t.job_id, Text(status, style=STYLE.get(status, "")), detail)
    return table


def batch_table(view: BatchView) -> Table:
    """A batch's counts in the title, one row per job."""
    title = (
        f"{view.batchId}  {view.phase}  {view.completed}/{view.totalJobs} completed, "
        f"{view.failed} failed, {view.processing} processing, {view.queued} queued"
    )
    table = Table(title=title, title_justify="left")
    for column in ("Job", "Status", "Progress", "Output / error"):
        table.add_column(column, overflow="fold")
    for job in view.jobs:
        detail = ""
        if job.outputFile and job.status == "completed":
            detail = f"{job.outputFile.filename} ({human_size(job.outputFile.size)})"
        elif job.error:
            detail = f"{job.error.code}: {job.error.message or ''}".rstrip(": ")
        table.add_row(
            job.jobId, Text(state_text(job), style=STYLE.get(job.status, "")), f"{job.progress}%", detail
        )
    return table


def job_table(view: JobView) -> Table:
    """One job's status as field/value rows."""
    table = Table(show_header=False, title=view.jobId, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    rows: list[tuple[str, str]] = [
        ("batch", view.batchId),
        ("status", state_text(view)),
        ("progress", f"{view.progress}%"),
    ]
    if view.estimatedTimeRemaining is not None:
        rows.append(("remaining", f"{view.estimatedTimeRemaining} s"))
    if view.inputFile and view.inputFile.name:
        rows.append(("input", f"{view.inputFile.name} ({human_size(view.inputFile.size)})"))
    if view.outputFile:
        out = view.outputFile
        rows.append(
            ("output", f"{out.filename} ({human_size(out.size)}, {out.format}, {out.bitrate or '-'})")
        )
    if view.downloadUrl:
        rows.append(("download", view.downloadUrl))
    if view.error:
        rows.append(("error", f"{view.error.code}: {view.error.message or ''}"))
        if view.error.details:
            rows.append(("details", view.error.details))
    for name, value in (
        ("created", view.createdAt),
        ("completed", view.completedAt),
        ("expires", view.expiresAt),
    ):
        if value:
            rows.append((name, value))
    for name, value in rows:
        table.add_row(name, value)
    return table
