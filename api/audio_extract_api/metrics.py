"""Prometheus metrics, in a registry per app (tests build many apps in one process).

The ``tenant`` label is a tenant configured in the key store (one per key at most), never a value
a client can choose, so its cardinality is bounded by the configuration. Request counts and
latencies stay per route only: per tenant they would multiply routes x statuses x tenants.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "audio_extract_api_requests_total",
            "HTTP requests by route template, method and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "audio_extract_api_request_duration_seconds",
            "Time to the end of the response, by route template.",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.jobs_accepted = Counter(
            "audio_extract_api_jobs_accepted_total",
            "Jobs accepted (new batches only, not idempotent replays), by tenant.",
            ["tenant"],
            registry=self.registry,
        )
        self.jobs_refused = Counter(
            "audio_extract_api_jobs_refused_total",
            "Submissions refused, by error code and tenant.",
            ["code", "tenant"],
            registry=self.registry,
        )
        self.uploads = Counter(
            "audio_extract_api_uploads_total",
            "Uploads stored, by tenant.",
            ["tenant"],
            registry=self.registry,
        )
        self.upload_bytes = Counter(
            "audio_extract_api_upload_bytes_total",
            "Bytes of the uploads stored, by tenant.",
            ["tenant"],
            registry=self.registry,
        )
        self.direct_uploads = Counter(
            "audio_extract_api_direct_uploads_total",
            "Direct uploads offered (presigned PUTs handed out; their bytes go to the store), by tenant.",
            ["tenant"],
            registry=self.registry,
        )
        self.uploads_refused = Counter(
            "audio_extract_api_uploads_refused_total",
            "Uploads refused, by error code and tenant.",
            ["code", "tenant"],
            registry=self.registry,
        )
        self.store_free = Gauge(
            "audio_extract_api_store_free_bytes",
            "Free bytes of the store (statvfs, what an unprivileged writer may use), last measured.",
            registry=self.registry,
        )
        self.store_full = Counter(
            "audio_extract_api_store_full_total",
            "Work refused with STORE_FULL, by operation (upload, batch, extract).",
            ["operation"],
            registry=self.registry,
        )
