"""The URLs a worker gets from the operator with an object store: presigned for one Job, when the
Job is made (``Reconciler._ensure_job``), and handed to the pure ``jobs.build_job`` as data.

The output object is ``<jobId>/audio.<ext>``: the worker's own file name (``options.filename``, or
one made from the source) is chosen only once it has probed the source, after the URL is signed,
so the object takes a fixed name under the job's prefix and the file name a client sees comes
from ``outputFile.filename``. The PUT is signed without a Content-Type: the worker sends its
output's media type, and a signed one would be one more thing the two must agree on.

The URLs are valid for ``Settings.worker_url_seconds``: the Job's deadline plus how long it may
wait for admission. A Job admitted later than that (``jobs.ADMIT_BY_ANNOTATION``) would run with
URLs that may expire before it ends: the admission pass makes it again instead (``stale``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from audio_extract_common import ids
from audio_extract_common.batch_spec import BatchSpec
from audio_extract_common.formats import FORMATS
from audio_extract_common.storage import Storage
from audio_extract_common.store import output_key, upload_key
from audio_extract_common.timefmt import parse

from .jobs import WorkerUrls
from .settings import Settings

OUTPUT_NAME = "audio"


def object_key(job_id: str, extension: str) -> str:
    """The output object of a job in an object store."""
    return output_key(job_id, f"{OUTPUT_NAME}.{extension}")


async def presign(storage: Storage, batch: Mapping[str, Any], index: int, settings: Settings) -> WorkerUrls:
    """Sign the URLs of ``batch.spec.jobs[index]``'s Job (local computation, no request to the store)."""
    spec = BatchSpec.model_validate(batch["spec"])
    job = spec.jobs[index]
    job_id = ids.job_id(ids.derived_batch_key(batch), index)
    seconds = settings.worker_url_seconds
    # counted from before signing: the URLs outlast what the Job records, never the reverse
    expires_at = datetime.now(UTC) + timedelta(seconds=seconds)
    key = object_key(job_id, FORMATS[job.output.format].extension)
    put = await storage.presign_put(key, seconds)
    if put is None:
        raise ValueError("this store presigns no URLs: the Job needs a volume")
    source_url = None
    if job.source.type == "upload" and job.source.file:
        source_url = await storage.presign_get(upload_key(job.source.file), seconds)
    return WorkerUrls(output_url=put.url, output_key=key, expires_at=expires_at, source_url=source_url)


def stale(admit_by: str | None, now: datetime) -> bool:
    """Whether a Job whose ``jobs.ADMIT_BY_ANNOTATION`` is ``admit_by`` (None: it has no URLs)
    could see its URLs expire before its deadline if it were admitted ``now``."""
    if not admit_by:
        return False
    try:
        return now > parse(admit_by)
    except ValueError:  # not ours to read: let it run, as a Job without the annotation would
        return False
