"""Prometheus metrics, in a registry per app (tests build many apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "audio_extract_api_requests_total", "HTTP requests by route template, method and status.",
            ["method", "route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "audio_extract_api_request_duration_seconds",
            "Time to the end of the response, by route template.",
            ["method", "route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.jobs_accepted = Counter(
            "audio_extract_api_jobs_accepted_total",
            "Jobs accepted (new batches only, not idempotent replays).",
            registry=self.registry,
        )
        self.jobs_refused = Counter(
            "audio_extract_api_jobs_refused_total", "Jobs refused at submission, by error code.",
            ["code"], registry=self.registry,
        )
