"""The ``audio-extract`` command: thin commands over the client, ``plan``, ``follow`` and ``render``.

Exit codes: 0 every job completed (or the command did what it was asked); 1 a job failed or was
cancelled, or the API refused the request; 2 a usage or configuration problem; 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.prompt import Confirm

from audio_extract_common.api_models import JobView
from audio_extract_common.formats import Format, Priority, Quality

from .. import errors
from ..client import Client
from . import config, plan
from .follow import download_all, follow, upload_all
from .render import TERMINAL, Tracked, batch_table, job_table, succeeded, summary_table

app = typer.Typer(
    help="Extract audio from videos with an audio-extract service: submit, follow, download.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Results on stdout, progress and messages on stderr: `--json` output stays parseable either way.
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


@dataclass
class Settings:
    api_url: str | None = None
    api_key: str | None = None
    env_file: Path | None = None

    def client(self) -> Client:
        try:
            cfg = config.load(self.api_url, self.api_key, self.env_file)
        except config.ConfigError as e:
            err.print(f"[red]error:[/] {e}")
            raise typer.Exit(2) from None
        return Client(cfg.api_url, cfg.api_key)


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON (the API's views) instead of tables.")]
WaitFlag = Annotated[bool, typer.Option("--wait", "-w", help="Follow the jobs until they end.")]
DownloadDir = Annotated[
    Path | None,
    typer.Option(
        "--download", "-d", help="Download the outputs into this directory (implies --wait).", file_okay=False
    ),
]
Interval = Annotated[float, typer.Option("--poll-interval", help="Seconds between status polls.", min=0.05)]


class UploadMode(StrEnum):
    auto = "auto"
    direct = "direct"
    streamed = "streamed"

    @property
    def direct_arg(self) -> bool | None:
        """``Client.upload``'s ``direct`` for this mode."""
        return {"auto": None, "direct": True, "streamed": False}[self.value]


UploadModeFlag = Annotated[
    UploadMode,
    typer.Option(
        "--upload-mode",
        help="How local files go up: straight to the object store (direct), through the API "
        "(streamed), or direct where the service offers it (auto).",
    ),
]


@app.callback()
def main(
    ctx: typer.Context,
    api_url: Annotated[str | None, typer.Option(help=f"The API's base URL (env {config.URL_VAR}).")] = None,
    api_key: Annotated[str | None, typer.Option(help=f"The API key (env {config.KEY_VAR}).")] = None,
    env_file: Annotated[
        Path | None,
        typer.Option(help="A KEY=value file to read them from (default: .local/dev.env here or above)."),
    ] = None,
) -> None:
    ctx.obj = Settings(api_url, api_key, env_file)


def _dump(value: Any) -> None:
    def plain(v: Any) -> Any:
        if isinstance(v, BaseModel):
            return v.model_dump(mode="json")
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        return v

    sys.stdout.write(json.dumps(plain(value), indent=2) + "\n")


@contextmanager
def _api_errors() -> Iterator[None]:
    """An API error or an unreachable API ends the command with its code, not a traceback."""
    try:
        yield
    except errors.ApiError as e:
        err.print(f"[red]error:[/] {e.code} ({e.status}): {e.message}")
        if isinstance(e.details, list):
            for d in e.details:
                err.print(f"  {d.get('field')}: {d.get('message')}" if isinstance(d, dict) else f"  {d}")
        elif e.details:
            err.print(f"  {e.details}")
        raise typer.Exit(1) from None
    except errors.TransportError as e:
        # The API, or the object store a direct upload goes to: the message names the request.
        err.print(f"[red]error:[/] no answer: {e}")
        raise typer.Exit(1) from None
    except (ValueError, ValidationError) as e:
        err.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from None


def _submit(api: Client, bodies: Sequence[dict[str, Any]], labels: Sequence[str]) -> list[Tracked]:
    """Each body as one batch (its own Idempotency-Key, reused on its retries); the jobs, in order."""
    tracked: list[Tracked] = []
    names = iter(labels)
    for body in bodies:
        accepted = api.submit_batch(body["jobs"], webhook=body.get("webhook"))
        for job in accepted.jobs:
            tracked.append(Tracked(next(names), job.jobId, accepted.batchId))
    return tracked


def _cancel_on_interrupt(api: Client, tracked: Sequence[Tracked], as_json: bool) -> None:
    """Ctrl-C while waiting: offer to cancel what has not finished (asked only at a terminal)."""
    batches = sorted({t.batch_id for t in tracked})
    err.print()
    if not (sys.stdin.isatty() and err.is_terminal) or as_json:
        err.print(f"interrupted; the jobs go on. Cancel them with: audio-extract cancel {' '.join(batches)}")
        return
    if Confirm.ask(f"Cancel the unfinished jobs of {len(batches)} batch(es)?", console=err, default=False):
        for batch_id in batches:
            view = api.cancel_batch(batch_id)
            err.print(f"{batch_id}: cancellation requested ({view.completed} already completed)")
    else:
        err.print(f"the jobs go on: audio-extract watch {' '.join(batches)}")


def _finish(
    api: Client, tracked: list[Tracked], download: Path | None, interval: float, as_json: bool
) -> None:
    """Follow, show the summary, download; exit 1 if any job did not complete."""
    try:
        views = follow(api, tracked, err, interval=interval, quiet=as_json)
    except KeyboardInterrupt:
        _cancel_on_interrupt(api, tracked, as_json)
        raise typer.Exit(130) from None
    ordered = [views[t.job_id] for t in tracked]
    paths = download_all(api, ordered, download, err, quiet=as_json) if download else {}
    if as_json:
        _dump(
            {
                "jobs": [
                    {
                        **v.model_dump(mode="json"),
                        "source": t.label,
                        "file": str(paths.get(t.job_id) or "") or None,
                    }
                    for t, v in zip(tracked, ordered, strict=True)
                ]
            }
        )
    else:
        out.print(summary_table(tracked, views))
        for t, v in zip(tracked, ordered, strict=True):
            if v.status != "completed":
                code = v.error.code if v.error else v.status.upper()
                err.print(
                    f"[red]{t.label}: {v.status} {code}[/]" + (f": {v.error.message}" if v.error else "")
                )
    if not succeeded(ordered):
        raise typer.Exit(1)


def _print_accepted(tracked: Sequence[Tracked], as_json: bool) -> None:
    if as_json:
        _dump({"jobs": [{"source": t.label, "jobId": t.job_id, "batchId": t.batch_id} for t in tracked]})
        return
    for batch_id in dict.fromkeys(t.batch_id for t in tracked):
        out.print(f"batch {batch_id}")
        for t in tracked:
            if t.batch_id == batch_id:
                out.print(f"  {t.job_id}  {t.label}")


@app.command()
def submit(
    ctx: typer.Context,
    sources: Annotated[
        list[str], typer.Argument(help="Video URLs (http/https) or local files (uploaded first).")
    ],
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")],
    quality: Annotated[Quality, typer.Option("--quality", "-q", help="Quality tier.")] = Quality.medium,
    bitrate: Annotated[
        str | None, typer.Option(help="Bitrate like 192k (lossy formats; overrides --quality).")
    ] = None,
    normalize: Annotated[bool, typer.Option("--normalize", help="EBU R128 loudness normalization.")] = False,
    preserve_metadata: Annotated[
        bool, typer.Option("--preserve-metadata", help="Keep the source's tags.")
    ] = False,
    sample_rate: Annotated[int | None, typer.Option(help="Output sample rate, Hz.")] = None,
    channels: Annotated[int | None, typer.Option(help="1 or 2.")] = None,
    priority: Annotated[Priority | None, typer.Option(help="Admission order.")] = None,
    webhook: Annotated[str | None, typer.Option(help="Webhook URL for each job's event.")] = None,
    wait: WaitFlag = False,
    download: DownloadDir = None,
    poll_interval: Interval = 1.0,
    upload_mode: UploadModeFlag = UploadMode.auto,
    as_json: JsonFlag = False,
) -> None:
    """Submit sources as batches of at most 10 jobs; with --wait, follow them and show a summary."""
    with _api_errors():
        items = plan.classify(sources)
        output = plan.output_of(
            format.value, quality.value, bitrate, normalize, preserve_metadata, sample_rate, channels
        )
        with ctx.obj.client() as api:
            uploads = upload_all(
                api, [i.path for i in items if i.path], err, quiet=as_json, direct=upload_mode.direct_arg
            )
            jobs = [
                plan.job_of(
                    i,
                    output,
                    uploads.get(i.path) if i.path else None,
                    priority.value if priority else None,
                    webhook,
                )
                for i in items
            ]
            tracked = _submit(api, [{"jobs": part} for part in plan.chunks(jobs)], [i.label for i in items])
            if not (wait or download):
                _print_accepted(tracked, as_json)
                return
            _finish(api, tracked, download, poll_interval, as_json)


@app.command()
def apply(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="A YAML or JSON manifest: ExtractionBatch objects or batch bodies.",
            exists=True,
            dir_okay=False,
        ),
    ],
    wait: WaitFlag = False,
    download: DownloadDir = None,
    poll_interval: Interval = 1.0,
    as_json: JsonFlag = False,
) -> None:
    """Submit a manifest (like crds/samples/*.yaml) through the API: spec.jobs and spec.webhook."""
    with _api_errors():
        bodies = plan.batches_of_manifest(file.read_text(), str(file))
        labels = [plan.job_label(j) for b in bodies for j in b["jobs"]]
        with ctx.obj.client() as api:
            tracked = _submit(api, bodies, labels)
            if not (wait or download):
                _print_accepted(tracked, as_json)
                return
            _finish(api, tracked, download, poll_interval, as_json)


@app.command()
def status(
    ctx: typer.Context, job_id: Annotated[str, typer.Argument(help="job_…")], as_json: JsonFlag = False
) -> None:
    """One job's status."""
    with _api_errors(), ctx.obj.client() as api:
        view = api.status(job_id)
    if as_json:
        _dump(view)
    else:
        out.print(job_table(view))


@app.command()
def batch(
    ctx: typer.Context, batch_id: Annotated[str, typer.Argument(help="batch_…")], as_json: JsonFlag = False
) -> None:
    """A batch: counts and each job's status."""
    with _api_errors(), ctx.obj.client() as api:
        view = api.batch(batch_id)
    if as_json:
        _dump(view)
    else:
        out.print(batch_table(view))


class _Kind(StrEnum):
    job = "job"
    batch = "batch"


@app.command()
def cancel(
    ctx: typer.Context,
    ids: Annotated[list[str], typer.Argument(help="job_… or batch_… ids.")],
    as_json: JsonFlag = False,
) -> None:
    """Cancel jobs or whole batches (what has finished stays as it is)."""
    results: list[Any] = []
    with _api_errors(), ctx.obj.client() as api:
        for id_ in ids:
            view: Any = api.cancel_batch(id_) if id_.startswith("batch_") else api.cancel_job(id_)
            results.append(view)
            if not as_json:
                kind = _Kind.batch if id_.startswith("batch_") else _Kind.job
                state = view.phase if kind is _Kind.batch else view.status
                out.print(f"{id_}: cancellation requested ({state})")
    if as_json:
        _dump(results)


@app.command("download")
def download_cmd(
    ctx: typer.Context,
    job_ids: Annotated[list[str], typer.Argument(help="job_… ids of completed jobs.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory to write into.", file_okay=False)
    ] = Path(),
    as_json: JsonFlag = False,
) -> None:
    """Download outputs (an interrupted download resumes where it stopped)."""
    with _api_errors(), ctx.obj.client() as api:
        views: list[JobView] = [api.status(j) for j in job_ids]
        for view in views:
            if view.status != "completed":
                raise errors.from_response(
                    409 if view.status in TERMINAL else 202,
                    {
                        "error": {
                            "code": view.error.code if view.error else "JOB_NOT_COMPLETED",
                            "message": f"{view.jobId} is {view.status}",
                        }
                    },
                    {},
                )
        paths = download_all(api, views, output, err, quiet=as_json)
    if as_json:
        _dump({job: str(path) for job, path in paths.items()})
    else:
        for job, path in paths.items():
            out.print(f"{job}  {path}")


@app.command()
def watch(
    ctx: typer.Context,
    batch_ids: Annotated[list[str], typer.Argument(help="batch_… ids.")],
    poll_interval: Interval = 1.0,
    as_json: JsonFlag = False,
) -> None:
    """Follow batches live until every job ends; exit 1 if any did not complete."""
    with _api_errors(), ctx.obj.client() as api:
        tracked = [Tracked(j.jobId, j.jobId, b) for b in batch_ids for j in api.batch(b).jobs]
        _finish(api, tracked, None, poll_interval, as_json)
