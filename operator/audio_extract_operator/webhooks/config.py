"""Webhook tunables: the operator's settings group ``webhook`` (``AUDIO_EXTRACT_OPERATOR_WEBHOOK__*``),
which the webhook code takes as it is (tests build it directly)."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

DEFAULT_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0)
"""Seconds to wait after attempts 1..7 (Svix/Standard Webhooks style): 8 attempts over ~31.6 h."""


class WebhookSettings(BaseModel):
    """The operator's settings group ``webhook``: ``AUDIO_EXTRACT_OPERATOR_WEBHOOK__*``."""

    secret: SecretStr = Field(
        default=SecretStr(""),
        description="Standard Webhooks signing secret (`whsec_<base64>`); empty = "
        "no webhooks are sent (deliveries stay pending).",
    )
    public_prefix: str = Field(default="/audio-extract/v1", description="Prefix of downloadUrl in payloads.")
    schedule: list[float] = Field(
        default_factory=lambda: list(DEFAULT_SCHEDULE),
        description="Retry delays in seconds (JSON list); attempts = len + 1 (default spans ~31.6 h).",
    )
    schedule_scale: float = Field(default=1.0, gt=0, description="Schedule multiplier (tests shrink it).")
    jitter: float = Field(default=0.1, ge=0, le=0.5, description="Retry delays vary by +/- this fraction.")
    timeout: float = Field(default=15.0, gt=0, description="Seconds one delivery attempt may take.")
    allow_cidrs: str = Field(
        default="", description="CIDRs webhook targets may use despite the address guard (dev/tests only)."
    )
    concurrency: int = Field(default=64, ge=1, description="Delivery attempts in flight at once.")
    resolve_timeout: float = Field(
        default=5.0,
        gt=0,
        description="Seconds an attempt waits for its target's host name; past it the attempt fails and "
        "is retried on the schedule. The system resolver cannot be interrupted: the lookup keeps its "
        "thread until it answers or gives up, and later attempts for that name join it.",
    )
    resolve_threads: int = Field(
        default=16,
        ge=1,
        description="Host lookups in flight at once (a thread each; one name is looked up once at a "
        "time however many deliveries wait for it), so slow names cannot take the whole process.",
    )
    poll_interval: float = Field(
        default=0.5,
        gt=0,
        description="Seconds between looks at a batch's due deliveries (bounds added latency).",
    )
