"""Webhook tunables.

``WebhookConfig`` is what the webhook code takes (tests build it directly). ``WebhookSettings``
holds the same tunables as the operator's settings group ``webhook``, so they come from
``AUDIO_EXTRACT_OPERATOR_WEBHOOK__*`` environment variables.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

DEFAULT_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0)
"""Seconds to wait after attempts 1..7 (Svix/Standard Webhooks style): 8 attempts over ~31.6 h."""


class WebhookConfig(BaseModel):
    secret: str = Field(description="Signing secret, `whsec_` + base64 of 24-64 random bytes.")
    public_prefix: str = Field(
        default="/audio-extract/v1", description="Prefix of the URLs put in payloads (downloadUrl)."
    )
    schedule: tuple[float, ...] = Field(
        default=DEFAULT_SCHEDULE,
        description="Delays in seconds after each failed attempt; its length + 1 is the number of attempts.",
    )
    schedule_scale: float = Field(default=1.0, gt=0, description="Schedule multiplier (tests shrink it).")
    jitter: float = Field(default=0.1, ge=0, le=0.5, description="Each delay varies by +/- this fraction.")
    max_retry_after: float = Field(default=86400.0, description="Cap in seconds on a 429's Retry-After.")
    timeout: float = Field(default=15.0, description="Seconds for one attempt, connect to last byte read.")
    max_response_bytes: int = Field(default=64 * 1024, description="At most this much of a response is read.")
    allow_cidrs: str = Field(default="", description="CIDRs exempt from the address guard (dev/tests).")
    concurrency: int = Field(default=64, ge=1, description="Attempts in flight at once, across all batches.")
    resolve_timeout: float = Field(
        default=5.0,
        gt=0,
        description="Seconds an attempt waits for its host name (then it fails and is "
        "retried on the schedule); within `timeout`.",
    )
    resolve_threads: int = Field(
        default=16,
        ge=1,
        description="Host lookups in flight at once (one thread each, one per name).",
    )
    poll_interval: float = Field(
        default=0.5, gt=0, description="Seconds between looks at a batch's due deliveries."
    )


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

    def config(self) -> WebhookConfig:
        return WebhookConfig(
            secret=self.secret.get_secret_value(),
            public_prefix=self.public_prefix,
            schedule=tuple(self.schedule),
            schedule_scale=self.schedule_scale,
            jitter=self.jitter,
            timeout=self.timeout,
            allow_cidrs=self.allow_cidrs,
            concurrency=self.concurrency,
            resolve_timeout=self.resolve_timeout,
            resolve_threads=self.resolve_threads,
            poll_interval=self.poll_interval,
        )
