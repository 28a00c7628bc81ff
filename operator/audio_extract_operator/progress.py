"""The internal endpoint workers post progress to, and the coalescing of those posts into status.

``POST /progress`` with a ``ProgressReport`` body and ``Authorization: Bearer <token>``, where
the token is the job's own HMAC (``tokens.progress_token``): a pod can report only for its job.
Reports are kept per batch and written at most once per ``progress.flush_interval`` (≈1 s), so a
chatty worker costs the API server one status write a second per batch, not one per post.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from audio_extract_common import ids
from audio_extract_common.batch_resource import KIND
from audio_extract_common.batch_status import BatchStatus, JobState, JobStatus, Step
from audio_extract_common.results import ProgressReport

from . import logs, metrics
from .readiness import Readiness
from .registry import Ref, Registry
from .settings import Settings
from .statuswriter import Change, StatusWriter
from .tokens import token_matches

log = logging.getLogger(__name__)
MAX_BODY = 16 * 1024


STEP_BANDS: dict[Step, tuple[int, int]] = {
    Step.downloading_video: (0, 25),
    Step.analyzing_video: (25, 30),
    Step.extracting_audio: (30, 95),
    Step.finalizing: (95, 99),
}
"""The share of the whole job's 0-100 ``progress`` each step covers. Workers report the percent
of their *current step* (``ProgressReport.progress``), while the contract's ``progress`` is for
the whole job: published as is, it fell back to 0 at every step change. The bands end at 99:
100 is set only with ``completed`` (``mapping.job_entry``), once the output is downloadable."""

STEP_ORDER = list(Step)


def job_progress(step: Step, step_percent: int) -> int:
    """The whole job's progress when ``step`` is ``step_percent`` done."""
    low, high = STEP_BANDS[step]
    return low + (high - low) * max(0, min(100, step_percent)) // 100


def merged(job: JobStatus, report: ProgressReport) -> dict[str, Any]:
    """The fields a report changes in a running job's entry; step and progress only move forward.

    One attempt's reports can arrive late or out of order relative to what status already shows
    (an earlier flush, the admission write), so a report behind the entry changes nothing but
    ``inputFile``. A retried pod starts again at ``downloading_video``: its reports show once
    they pass the previous attempt's progress, never by going backwards.
    """
    update: dict[str, Any] = {}
    if report.inputFile is not None:
        update["inputFile"] = report.inputFile
    step = Step(report.step)
    progress = job_progress(step, report.progress)
    current = Step(job.currentStep) if job.currentStep else None
    if current is not None and STEP_ORDER.index(step) < STEP_ORDER.index(current):
        return update
    if progress < job.progress:
        return update
    update.update(currentStep=step, progress=progress, estimatedTimeRemaining=report.estimatedTimeRemaining)
    return update


def apply_reports(status: BatchStatus, reports: dict[int, ProgressReport]) -> BatchStatus | None:
    """Progress onto ``processing`` entries (``merged``); None when nothing changes.

    Reports never change an entry's state: the Job's own start (admission, or its events) moves
    it out of ``queued`` with its ``startedAt``. A report on a ``queued`` entry came before that
    write (the next one shows), or late from a pod Kueue preempted (the job waits again)."""
    changed = False
    for job in status.jobs:
        report = reports.get(job.index)
        if report is None or job.status != JobState.processing:
            continue
        for k, v in merged(job, report).items():
            if getattr(job, k) != v:
                setattr(job, k, v)
                changed = True
    return status if changed else None


def applying(reports: dict[int, ProgressReport]) -> Change:
    """The status change that puts ``reports`` onto a batch's status (``apply_reports``)."""
    return lambda _body, status: apply_reports(status, reports)


class Progress:
    def __init__(
        self, settings: Settings, registry: Registry, writer: StatusWriter, readiness: Readiness | None = None
    ) -> None:
        self.settings = settings
        self.readiness = readiness
        self.registry = registry
        self.writer = writer
        self._pending: dict[Ref, dict[int, ProgressReport]] = {}
        self._flushing: set[Ref] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self.received = 0

    # --- HTTP ---------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/progress", self.handle)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", metrics.handler(self.settings.store.volume_root))
        if self.readiness is not None:
            app.router.add_get("/readyz", self.readiness.handle)
        return app

    async def start(self) -> None:
        if not self.settings.progress.port:
            return
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.settings.progress.host, self.settings.progress.port).start()
        log.info("progress endpoint on %s:%d", self.settings.progress.host, self.settings.progress.port)

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def handle(self, request: web.Request) -> web.Response:
        try:
            report = ProgressReport.model_validate_json(await request.read())
        except (ValidationError, ValueError):
            return web.json_response({"error": "invalid progress report"}, status=422)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        if not token_matches(self.settings.progress.secret.get_secret_value(), report.jobId, token):
            return web.json_response({"error": "bad token"}, status=401)
        parsed = ids.parse_job_id(report.jobId)
        ref = self.registry.keys.get(parsed[0]) if parsed else None
        if parsed is None or ref is None:
            return web.json_response({"error": "unknown job"}, status=404)
        self.received += 1
        self.submit(ref, parsed[1], report)
        return web.Response(status=202)

    # --- coalescing ---------------------------------------------------------------------------

    def submit(self, ref: Ref, index: int, report: ProgressReport) -> None:
        self._pending.setdefault(ref, {})[index] = report
        if ref not in self._flushing:
            self._flushing.add(ref)
            task = asyncio.create_task(self._flush(ref))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _flush(self, ref: Ref) -> None:
        """Write what is pending for ``ref``, then wait one interval, and again while reports keep
        coming: at most one write per interval per batch. The pause lives in this task, not in a
        map of last flush times, so nothing of a batch is kept once its reports stop."""
        # this task's lines
        logs.set_about(self.registry.tenant_of(KIND, *ref), self.registry.batch_id_of(*ref))
        try:
            while reports := self._pending.pop(ref, None):
                try:
                    await self.writer.update(ref[0], ref[1], applying(reports))
                except Exception as e:  # progress is advisory: the outcome comes from the Job
                    metrics.reconcile_error("progress")
                    log.warning("progress write for %s/%s failed: %s", ref[0], ref[1], e)
                await asyncio.sleep(self.settings.progress.flush_interval)
        finally:
            self._flushing.discard(ref)
