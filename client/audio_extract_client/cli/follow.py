"""Following jobs to the end, and moving files, with live bars on a terminal and plain lines elsewhere."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from audio_extract_common.api_models import JobView

from ..client import Client
from .render import TERMINAL, Tracked, state_text


def _job_bars(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}", style="bold"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
        console=console,
    )


def _transfer_bars(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}", style="bold"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
    )


def follow(
    api: Client,
    tracked: Sequence[Tracked],
    console: Console,
    *,
    interval: float = 1.0,
    quiet: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, JobView]:
    """Poll each batch until every tracked job is terminal; the last view of each job.

    On a terminal: one bar per job (percent from ``progress``, the step or error code beside it).
    Elsewhere: a line whenever a job's state changes. ``quiet``: nothing at all (``--json``)."""
    batches = list(dict.fromkeys(t.batch_id for t in tracked))
    wanted = {t.job_id for t in tracked}
    views: dict[str, JobView] = {}
    bars = _job_bars(console) if console.is_terminal and not quiet else None
    tasks = {t.job_id: bars.add_task(t.label, total=100, state="submitted") for t in tracked} if bars else {}
    shown: dict[str, str] = {}
    labels = {t.job_id: t.label for t in tracked}
    if bars:
        bars.start()
    try:
        while True:
            for batch_id in batches:
                for job in api.batch(batch_id).jobs:
                    if job.jobId in wanted:
                        views[job.jobId] = job
            for job_id in wanted:
                view = views.get(job_id)
                text = state_text(view)
                if bars:
                    style = {"completed": "green", "failed": "red", "cancelled": "yellow"}.get(
                        view.status if view else "", ""
                    )
                    done = 100 if view and view.status == "completed" else (view.progress if view else 0)
                    bars.update(tasks[job_id], completed=done, state=f"[{style}]{text}" if style else text)
                elif not quiet and view and shown.get(job_id) != f"{text} {view.progress}":
                    shown[job_id] = f"{text} {view.progress}"
                    console.print(f"{labels[job_id]} {job_id} {text} {view.progress}%", highlight=False)
            if all(v.status in TERMINAL for v in views.values()) and len(views) == len(wanted):
                return views
            sleep(interval)
    finally:
        if bars:
            bars.stop()


def upload_all(
    api: Client,
    paths: Sequence[Path],
    console: Console,
    quiet: bool = False,
    direct: bool | None = None,
) -> dict[Path, str]:
    """Upload each local file (one bar each; ``direct`` as ``Client.upload``); ``path → upload id``."""
    ids: dict[Path, str] = {}
    bars = _transfer_bars(console) if console.is_terminal and not quiet else None
    if bars:
        bars.start()
    try:
        for path in paths:
            if bars:
                task = bars.add_task(f"upload {path.name}", total=path.stat().st_size)

                def moved(done: int, total: int | None, task: int = task) -> None:
                    bars.update(task, completed=done, total=total)

                result = api.upload(path, on_progress=moved, direct=direct)
            else:
                result = api.upload(path, direct=direct)
                if not quiet:
                    console.print(
                        f"uploaded {path} as {result.fileId} ({result.size} bytes)", highlight=False
                    )
            ids[path] = result.fileId
    finally:
        if bars:
            bars.stop()
    return ids


def download_all(
    api: Client, views: Sequence[JobView], directory: Path, console: Console, quiet: bool = False
) -> dict[str, Path]:
    """Download each completed job's output into ``directory`` (one bar each); ``job id → path``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    bars = _transfer_bars(console) if console.is_terminal and not quiet else None
    if bars:
        bars.start()
    try:
        for view in views:
            if view.status != "completed" or not view.outputFile or not view.outputFile.filename:
                continue
            dest = directory / Path(view.outputFile.filename).name
            if dest in paths.values():  # two jobs, one name: the second gets its job id
                dest = dest.with_name(f"{dest.stem}-{view.jobId}{dest.suffix}")
            if bars:
                task = bars.add_task(f"download {dest.name}", total=view.outputFile.size)

                def moved(done: int, total: int | None, task: int = task) -> None:
                    bars.update(task, completed=done, total=total)

                paths[view.jobId] = api.download(view.jobId, dest, on_progress=moved)
            else:
                paths[view.jobId] = api.download(view.jobId, dest)
                if not quiet:
                    console.print(f"downloaded {view.jobId} to {dest}", highlight=False)
    finally:
        if bars:
            bars.stop()
    return paths
