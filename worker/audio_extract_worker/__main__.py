"""``python -m audio_extract_worker``: run the job from the environment, write the result, exit.

Exit codes (``audio_extract_common.results``): 0 done; 65 permanent failure (bad media, no
audio, too large, ffmpeg failed, invalid job spec, a download that would fail again: 4xx,
refused address, missing upload): the Job's podFailurePolicy fails it at once; 75 possibly
transient (other download failures, a full store or scratch volume): retried by backoffLimit;
1 unexpected error;
143 stopped by SIGTERM (pod deleted, batch cancelled or deadline).
"""

from __future__ import annotations

import gc

if __name__ == "__main__":
    # The imports below allocate hundreds of thousands of objects and free almost none, so the
    # collections they trigger find nothing: off until the job is parsed (``_started``).
    gc.disable()

import contextlib
import json
import logging
import os
import resource
import signal
import sys
from pathlib import Path
from types import FrameType

from pydantic import ValidationError

from audio_extract_common.batch_status import ErrorCode, JobError
from audio_extract_common.results import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_PERMANENT,
    EXIT_TRANSIENT,
    WorkerResult,
    exit_code_for,
)
from audio_extract_common.store import FilesystemStore, Store

from .errors import OUT_OF_SPACE_ERRNOS, out_of_space
from .job import run_job
from .progress import ProgressReporter
from .settings import WorkerSettings
from .spec import WorkerJob

log = logging.getLogger("audio_extract_worker")
EXIT_TERMINATED = 143


class Terminated(BaseException):
    """SIGTERM arrived: unwind (finally blocks kill ffmpeg and remove scratch files)."""


class _About(logging.Filter):
    """Every line of this process is about its one job: its ids and tenant on every record."""

    def __init__(self, tenant: str | None, batch_id: str | None, job_id: str | None) -> None:
        super().__init__()
        self.tenant, self.batch_id, self.job_id = tenant, batch_id, job_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.tenant, record.batch_id, record.job_id = self.tenant, self.batch_id, self.job_id
        return True


def configure_logs(settings: WorkerSettings, job: WorkerJob | None) -> None:
    """The format the operator chose (``LOG_FORMAT``), and the job's ids on every line."""
    about = _About(settings.tenant, job.batchId if job else None, job.jobId if job else None)
    for handler in logging.getLogger().handlers:
        handler.addFilter(about)
        if settings.log_format == "json":
            from audio_extract_common.jsonlog import JsonFormatter

            handler.setFormatter(JsonFormatter())


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def _write_result(settings: WorkerSettings, result: WorkerResult) -> None:
    message = result.to_message()
    try:
        settings.result_path.write_text(message)
    except OSError as e:
        log.error("cannot write the result to %s: %s", settings.result_path, e)
    print(message, flush=True)  # also in the pod log


def _spec_error(e: Exception) -> JobError:
    """A bad ``output`` (the API and CRD normally stop it) is EXTRACTION_FAILED; anything else internal."""
    detail = str(e)[:1000]
    errors = e.errors() if isinstance(e, ValidationError) else []
    if errors and all(err["loc"][:1] == ("output",) for err in errors):
        return JobError(code=ErrorCode.EXTRACTION_FAILED, message="invalid output settings", details=detail)
    return JobError(code=ErrorCode.INTERNAL_ERROR, message="invalid job spec", details=detail)


def _volume(e: OSError, settings: WorkerSettings) -> str:
    """Which volume a write that found no space was on, for the message."""
    written = Path(e.filename).resolve() if isinstance(e.filename, str) else None
    return "scratch space" if written and written.is_relative_to(settings.scratch_dir.resolve()) else "store"


def peak_rss_kib() -> int:
    """This process's own peak RSS. ``VmHWM`` is reset by exec; ``ru_maxrss`` is not (on Linux it
    keeps the high-water mark of the forked parent's image, e.g. a big test runner)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


SECRET_VARIABLES = WorkerSettings.secret_variables()
"""Presigned URLs: read once into the settings, then gone from the environment ffmpeg inherits."""


def _settings() -> WorkerSettings | None:
    """The settings, or None after logging what is wrong with them: by field and problem only,
    since pydantic would quote the input, presigned URLs included."""
    try:
        settings = WorkerSettings()
    except ValidationError as e:
        for error in e.errors(include_url=False, include_input=False, include_context=False):
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            log.error("invalid setting %s: %s", where, error["msg"])
        return None
    for name in SECRET_VARIABLES:
        os.environ.pop(name, None)
    return settings


def _store(settings: WorkerSettings) -> contextlib.AbstractContextManager[Store]:
    if settings.presigned:
        from .presigned import PresignedStore  # httpx loads only when it is needed

        return PresignedStore.from_settings(settings)
    return contextlib.nullcontext(FilesystemStore(settings.store_root))


def _started() -> None:
    """Start-up is over: what it allocated stays for the process's life, out of later collections."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its request lines would log source URLs
    signal.signal(signal.SIGTERM, _on_sigterm)
    settings = _settings()
    if settings is None:
        return EXIT_INTERNAL
    try:
        job = WorkerJob.model_validate_json(settings.job_json())
    except (ValidationError, ValueError, OSError) as e:
        configure_logs(settings, None)
        _write_result(settings, WorkerResult(error=_spec_error(e)))
        return EXIT_PERMANENT  # retrying the same spec cannot help
    _started()
    configure_logs(settings, job)
    reporter = ProgressReporter(
        job.jobId,
        settings.progress_url,
        settings.progress_token,
        settings.progress_interval,
        settings.progress_timeout,
    )
    code = EXIT_INTERNAL
    try:
        with _store(settings) as store:
            result = run_job(job, settings, store, reporter)
        code = (
            EXIT_OK
            if result.output
            else exit_code_for(
                ErrorCode(result.error.code),  # type: ignore[union-attr]
                result.permanent,
                result.transient,
            )
        )
    except Terminated:
        result = WorkerResult(error=JobError(code=ErrorCode.CANCELLED, message="the worker was stopped"))
        code = EXIT_TERMINATED
    except OSError as e:
        if e.errno not in OUT_OF_SPACE_ERRNOS:
            raise
        # a disk filled while the worker itself wrote (staging, a copy into scratch): ffmpeg's
        # own writes are recognised in run_ffmpeg
        failure = out_of_space(_volume(e, settings), f"{type(e).__name__}: {e}")
        result = WorkerResult(error=failure.to_error(), transient=True)
        code = EXIT_TRANSIENT
    except Exception as e:
        log.exception("unexpected failure")
        result = WorkerResult(
            error=JobError(
                code=ErrorCode.INTERNAL_ERROR,
                message="unexpected worker error",
                details=f"{type(e).__name__}: {e}"[:1000],
            )
        )
    finally:
        reporter.close()
    _write_result(settings, result)
    log.info(
        "%s",
        json.dumps({"event": "finished", "jobId": job.jobId, "exitCode": code, "peakRssKiB": peak_rss_kib()}),
    )
    return code


def exit_now(code: int) -> None:
    """Flush the logs and streams, then leave without the interpreter's teardown: by now the
    output is stored and synced, the result written and the progress thread flushed or given up
    on, and freeing every module's objects one by one would only lengthen each job (the short copy
    jobs most)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
