"""Webhook tunables. The operator's one settings object builds this (env AUDIO_EXTRACT_OPERATOR_*)."""

from __future__ import annotations

from pydantic import BaseModel, Field

DEFAULT_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0)
"""Seconds to wait after attempts 1..7 (Svix/Standard Webhooks style): 8 attempts over ~31.6 h."""


class WebhookConfig(BaseModel):
    secret: str = Field(description="Signing secret, `whsec_` + base64 of 24-64 random bytes.")
    public_prefix: str = Field(
        default="/audio-extract/v1", description="Prefix of the URLs put in payloads (downloadUrl)."
    )
    schedule: tuple[float, ...] = Field(
        default=DEFAULT_SCHEDULE, description="Delays in seconds after each failed attempt; its length + 1 "
        "is the number of attempts."
    )
    schedule_scale: float = Field(default=1.0, gt=0, description="Schedule multiplier (tests shrink it).")
    jitter: float = Field(default=0.1, ge=0, le=0.5, description="Each delay varies by +/- this fraction.")
    max_retry_after: float = Field(default=86400.0, description="Cap in seconds on a 429's Retry-After.")
    timeout: float = Field(default=15.0, description="Seconds for one attempt, connect to last byte read.")
    max_response_bytes: int = Field(default=64 * 1024, description="At most this much of a response is read.")
    allow_cidrs: str = Field(default="", description="CIDRs exempt from the address guard (dev/tests).")
    concurrency: int = Field(default=64, ge=1, description="Attempts in flight at once, across all batches.")
