"""The operator's Prometheus metrics: one registry per process, served as ``GET /metrics`` on the
progress port (``progress.py``; a standby replica serves it from its own small server).

What a platform team alerts on and graphs: the queue and the running work (gauges computed from the
registry at each scrape, never kept up to date by hand), outcomes by job error code, per-step
durations (the worker's timings, ``StepTimings``), the admission wait, the delay between a Job
ending and its outcome in status, webhook deliveries and their backlog, reconcile errors, the
store's space and whether this replica leads.

Handlers and loops call the small functions below; the names of every metric are here and nowhere
else (the chart's alerts and dashboard are checked against this registry). Cardinality is bounded:
labels are enums (state, priority, format, step, error code, outcome, event, where) and the
tenant, whose values are the API keys' configured tenants or labels someone with rights to create
batches set; job and batch ids are never labels.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from audio_extract_common.batch_status import TERMINAL_STATES, BatchStatus, Delivery, JobStatus
from audio_extract_common.storage import Storage
from audio_extract_common.timefmt import parse

log = logging.getLogger(__name__)

PREFIX = "audio_extract_operator_"
NO_TENANT = "-"
"""The tenant label of a batch applied without a tenant label (as in the log lines)."""
PRIORITIES = ("high", "normal", "low")
JOB_STATES = ("queued", "admitted", "running")
STEPS = ("download", "probe", "encode", "store")
STORE_TIMEOUT = 2.0
"""Seconds a scrape waits for the store's statvfs (a hung network volume must not hang /metrics)."""

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # CPU seconds and resident memory of this replica

LEADER = Gauge(
    PREFIX + "leader",
    "1 while this replica leads (operates), 0 while it stands by.",
    registry=REGISTRY,
)
JOB_OUTCOMES = Counter(
    PREFIX + "job_outcomes_total",
    "Jobs that ended, by status (completed, failed, cancelled), job error code (empty when "
    "completed) and tenant.",
    ["status", "code", "tenant"],
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    PREFIX + "job_duration_seconds",
    "Seconds per job by output format and step: download, probe, encode and store as the worker "
    "timed them, total from admission to the outcome.",
    ["format", "step"],
    registry=REGISTRY,
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
JOBS_ADMITTED = Counter(
    PREFIX + "jobs_admitted_total",
    "Jobs the operator admitted (unsuspended), by priority and tenant.",
    ["priority", "tenant"],
    registry=REGISTRY,
)
ADMISSION_WAIT = Histogram(
    PREFIX + "admission_wait_seconds",
    "Seconds from a batch's creation to the admission of each of its jobs, by priority.",
    ["priority"],
    registry=REGISTRY,
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)
STATUS_LATENCY = Histogram(
    PREFIX + "status_latency_seconds",
    "Seconds from a Job's end (its Complete or Failed condition) to its outcome in the batch's status.",
    registry=REGISTRY,
    buckets=(0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300),
)
WEBHOOK_DELIVERIES = Counter(
    PREFIX + "webhook_deliveries_total",
    "Webhook delivery attempts by outcome (delivered; retrying: will be tried again; failed: given "
    "up), event and tenant.",
    ["outcome", "event", "tenant"],
    registry=REGISTRY,
)
WEBHOOK_LATENCY = Histogram(
    PREFIX + "webhook_delivery_latency_seconds",
    "Seconds from an event (a job or batch ending) to its delivery (a 2xx), retries included, by event.",
    ["event"],
    registry=REGISTRY,
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400),
)
RECONCILE_ERRORS = Counter(
    PREFIX + "reconcile_errors_total",
    "Failures of a reconcile step (retried or left to the next pass), by where: batch, job, "
    "admission, retention, progress, webhook.",
    ["where"],
    registry=REGISTRY,
)
KUBE_REQUESTS = Counter(
    PREFIX + "kube_requests_total",
    "Requests this replica made of the Kubernetes API with its own client (kopf's watches and "
    "its handlers' patches are not counted), by method, resource (with its subresource) and "
    "answer: 2xx, the status code, or 0 when none came.",
    ["method", "resource", "code"],
    registry=REGISTRY,
)
STORE_SIZE = Gauge(PREFIX + "store_size_bytes", "Size of the store volume.", registry=REGISTRY)
STORE_USED = Gauge(
    PREFIX + "store_used_bytes",
    "Bytes used on the store volume, or held under an object store's prefix (measured every "
    "store.usage_interval).",
    registry=REGISTRY,
)
STORE_OBJECTS = Gauge(
    PREFIX + "store_objects",
    "Objects under an object store's prefix (measured every store.usage_interval; not for a volume).",
    registry=REGISTRY,
)
STORE_FREE = Gauge(
    PREFIX + "store_free_bytes",
    "Bytes free on the store volume for an unprivileged writer (what the workers may use).",
    registry=REGISTRY,
)


# --- what the gauges computed at scrape time read -----------------------------------------------


class JobBook(Protocol):
    """The registry's Jobs, as far as the gauges need them."""

    @property
    def jobs(self) -> Mapping[Any, Any]: ...

    @property
    def blocked(self) -> set[Any]: ...


class DeliveryBook(Protocol):
    """The webhook pump's active batches (uid -> a body with spec and status)."""

    @property
    def bodies(self) -> Mapping[str, Mapping[str, Any]]: ...


class _Live(Collector):
    """``jobs`` (by state and priority) and the webhook backlog, read from the leader's registry and
    pump at each scrape. A standby (or a process before start-up) has neither and exports neither."""

    def __init__(self) -> None:
        self.jobs: JobBook | None = None
        self.deliveries: DeliveryBook | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.jobs is not None:
            family = GaugeMetricFamily(
                PREFIX + "jobs",
                "Jobs by state (queued: waiting for admission; admitted: unsuspended, no pod running "
                "yet; running: a pod runs) and priority.",
                labels=["state", "priority"],
            )
            counts = job_counts(self.jobs.jobs.items(), self.jobs.blocked)
            for state in JOB_STATES:
                for priority in PRIORITIES:
                    family.add_metric([state, priority], counts.get((state, priority), 0))
            yield family
        if self.deliveries is not None:
            pending = GaugeMetricFamily(
                PREFIX + "webhook_pending",
                "Webhook deliveries owed or pending (not yet delivered nor given up).",
            )
            pending.add_metric([], sum(backlog(b) for b in list(self.deliveries.bodies.values())))
            yield pending

    def describe(self) -> Iterable[GaugeMetricFamily]:
        # the names, so the registry knows them before start-up (the chart tests read them)
        yield GaugeMetricFamily(PREFIX + "jobs", "", labels=["state", "priority"])
        yield GaugeMetricFamily(PREFIX + "webhook_pending", "")


LIVE = _Live()
REGISTRY.register(LIVE)


def watch(jobs: JobBook | None, deliveries: DeliveryBook | None) -> None:
    """At start-up (the leader): the gauges read these from now on; None stops them."""
    LIVE.jobs, LIVE.deliveries = jobs, deliveries


def job_counts(jobs: Iterable[tuple[Any, Any]], blocked: set[Any]) -> dict[tuple[str, str], int]:
    """(state, priority) -> count, for Jobs not finished. A blocked queued Job (being cancelled)
    waits for nothing: it is not counted."""
    counts: dict[tuple[str, str], int] = {}
    for ref, info in jobs:
        if info.finished is not None:
            continue
        if info.suspended:
            if ref in blocked:
                continue
            state = "queued"
        else:
            state = "running" if info.pod_running else "admitted"
        key = (state, info.priority if info.priority in PRIORITIES else "normal")
        counts[key] = counts.get(key, 0) + 1
    return counts


def backlog(body: Mapping[str, Any]) -> int:
    """Deliveries a batch owes (terminal job or finished batch with a target, none recorded yet) or
    has pending."""
    spec, status = body.get("spec") or {}, body.get("status") or {}
    spec_jobs, batch_hook = spec.get("jobs") or [], spec.get("webhook")
    jobs = status.get("jobs") or []
    count = 0
    for j in jobs:
        hook = j.get("webhook")
        if hook is not None:
            count += hook.get("state") == "pending"
        elif j.get("status") in TERMINAL_STATES:
            i = j.get("index", -1)
            own = (spec_jobs[i].get("options") or {}).get("webhook") if 0 <= i < len(spec_jobs) else None
            count += bool(own or batch_hook)
    if batch_hook and jobs and all(j.get("status") in TERMINAL_STATES for j in jobs):
        hook = status.get("webhook")
        count += hook is None or hook.get("state") == "pending"
    return count


# --- events --------------------------------------------------------------------------------------


def tenant_label(body: Mapping[str, Any]) -> str:
    from audio_extract_common import ids

    return ((body.get("metadata") or {}).get("labels") or {}).get(ids.TENANT_LABEL) or NO_TENANT


def _seconds_between(start: str | None, end: str | datetime | None) -> float | None:
    """Seconds from ``start`` to ``end`` (ISO 8601 times; ``end`` may be a datetime), None if unknown."""
    if not start or not end:
        return None
    try:
        return max(0.0, ((parse(end) if isinstance(end, str) else end) - parse(start)).total_seconds())
    except ValueError:
        return None


def status_written(body: Mapping[str, Any], old: BatchStatus, new: BatchStatus) -> None:
    """After a status write: every job that became terminal counts once, with its durations."""
    before = {j.index: j.status for j in old.jobs}
    tenant: str | None = None
    for j in new.jobs:
        if j.status not in TERMINAL_STATES or before.get(j.index) in TERMINAL_STATES:
            continue
        tenant = tenant or tenant_label(body)
        code = j.error.code if j.error is not None and j.status != "completed" else ""
        JOB_OUTCOMES.labels(j.status, code, tenant).inc()
        _observe_durations(body, j)


def _observe_durations(body: Mapping[str, Any], job: JobStatus) -> None:
    spec_jobs = (body.get("spec") or {}).get("jobs") or []
    spec = spec_jobs[job.index] if 0 <= job.index < len(spec_jobs) else {}
    fmt = str((spec.get("output") or {}).get("format") or "unknown")
    if job.timings is not None:
        for step in STEPS:
            seconds = getattr(job.timings, step)
            if seconds is not None:
                JOB_DURATION.labels(fmt, step).observe(seconds)
    if job.status != "cancelled" and (total := _seconds_between(job.startedAt, job.completedAt)) is not None:
        JOB_DURATION.labels(fmt, "total").observe(total)


def admitted(priority: str, tenant: str | None, batch_created: str) -> None:
    JOBS_ADMITTED.labels(priority, tenant or NO_TENANT).inc()
    if (wait := _seconds_between(batch_created, datetime.now(UTC))) is not None:
        ADMISSION_WAIT.labels(priority).observe(wait)


def outcome_recorded(job_finished_at: str | None) -> None:
    """A Job's outcome is in status now: how long after the Job ended (a second's precision: the
    condition's time has no more)."""
    if (seconds := _seconds_between(job_finished_at, datetime.now(UTC))) is not None:
        STATUS_LATENCY.observe(seconds)


def delivery_attempted(before: Delivery, after: Delivery, tenant: str) -> None:
    outcome = {"delivered": "delivered", "failed": "failed"}.get(after.state, "retrying")
    WEBHOOK_DELIVERIES.labels(outcome, before.event, tenant or NO_TENANT).inc()
    seconds = _seconds_between(before.timestamp, after.deliveredAt) if after.state == "delivered" else None
    if seconds is not None:
        WEBHOOK_LATENCY.labels(before.event).observe(seconds)


def kube_request(method: str, resource: str, code: str) -> None:
    KUBE_REQUESTS.labels(method, resource, code).inc()


def reconcile_error(where: str) -> None:
    RECONCILE_ERRORS.labels(where).inc()


# --- the store and the endpoint ------------------------------------------------------------------


def measure_store(root: Path) -> None:
    """statvfs of the store (blocking: run it in a thread)."""
    st = os.statvfs(root)
    STORE_SIZE.set(st.f_blocks * st.f_frsize)
    STORE_USED.set((st.f_blocks - st.f_bfree) * st.f_frsize)
    STORE_FREE.set(st.f_bavail * st.f_frsize)


async def measure_store_usage(storage: Storage) -> tuple[int, int]:
    """Objects and bytes in an object store, under its prefix, by listing them: one request per
    1,000 objects (so callers do it every few minutes, not at each scrape); an object store has no
    size or free space to read. Returns ``(objects, bytes)``."""
    objects = size = 0
    async for info in storage.list(""):
        objects += 1
        size += info.size
    STORE_OBJECTS.set(objects)
    STORE_USED.set(size)
    return objects, size


def handler(store_root: Path | None) -> Any:
    """``GET /metrics``: the store measured afresh (bounded in time), then the registry."""

    async def metrics(_request: web.Request) -> web.Response:
        if store_root is not None:
            try:
                await asyncio.wait_for(asyncio.to_thread(measure_store, store_root), STORE_TIMEOUT)
            except (OSError, TimeoutError) as e:  # the last values stay; the scrape still answers
                log.warning("measuring the store at %s failed: %s", store_root, e)
        # in the event loop: the gauges read the registry, which only the loop changes
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return metrics
