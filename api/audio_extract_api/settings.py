"""The API's one settings object, read from the environment (prefix ``AUDIO_EXTRACT_API_``).

Every tunable carries its unit in its name or description and the reason for its default.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from audio_extract_common.jsonlog import LogFormat
from audio_extract_common.objectstore import S3Settings
from audio_extract_common.storage import StoreType

PRESIGN_MAX_SECONDS = 7 * 24 * 3600
"""The longest validity a SigV4 presigned URL may have."""


class Settings(BaseSettings):
    # `__` reaches into the object store's settings: AUDIO_EXTRACT_API_S3__BUCKET=...
    model_config = SettingsConfigDict(
        env_prefix="AUDIO_EXTRACT_API_", extra="ignore", env_nested_delimiter="__"
    )

    # --- where batches live -----------------------------------------------------------------
    namespace: str = Field(default="default", description="Namespace of the ExtractionBatch objects.")
    kubeconfig: Path | None = Field(
        default=None,
        description="Kubeconfig file; unset = the pod's service account, outside a pod KUBECONFIG or "
        "~/.kube/config.",
    )
    kube_context: str | None = Field(default=None, description="Kubeconfig context; unset = current.")
    kube_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Per-call timeout towards the Kubernetes API; past it the API answers 503.",
    )

    log_format: LogFormat = Field(
        default="text",
        description="`json`: one JSON object per log line, with tenant, batchId and jobId fields on "
        "the lines about them (for a log system; the chart's default); `text`: for people (`make dev`).",
    )

    # --- public URLs ------------------------------------------------------------------------
    public_prefix: str = Field(
        default="/audio-extract/v1",
        description="Prefix of the statusUrl/downloadUrl the API returns (docs/contract.md §1).",
    )

    # --- auth -------------------------------------------------------------------------------
    api_keys_path: Path | None = Field(
        default=None,
        description="File of `<id> <sha256-hex> [scopes] [tenant=<name>]` lines, or a directory (a "
        "mounted Secret) with one file per key id holding `<sha256-hex> [scopes] [tenant=<name>]`. "
        "The tenant defaults to the key id. Unset = every request is 401.",
    )
    api_keys_reload_seconds: float = Field(
        default=10.0,
        gt=0,
        le=60,
        description="How often the key file is re-read; rotation takes effect within this (≤ 60 s).",
    )
    rate_limit_per_minute: int = Field(
        default=0, ge=0, description="Requests per key per minute (token bucket); 0 = no limit."
    )
    rate_limit_burst: int = Field(
        default=0, ge=0, description="Bucket size; 0 = same as the per-minute rate."
    )

    idempotency_secret: SecretStr = Field(
        default=SecretStr(""),
        description="HMAC key turning (tenant, Idempotency-Key) into a batch id nobody can compute "
        "from the key. Every replica needs the same one, kept across restarts (changing it forgets "
        "the keys in use). Empty = a random one per process: idempotency then holds only within one "
        "process (a warning is logged).",
    )

    # --- admission --------------------------------------------------------------------------
    queue_capacity: int = Field(
        default=1000,
        ge=1,
        description="Jobs allowed to wait in `queued`; a batch that would exceed it gets 503 QUEUE_FULL.",
    )
    queue_retry_after_seconds: int = Field(default=30, ge=1, description="Retry-After on QUEUE_FULL.")
    estimate_base_seconds: int = Field(
        default=20,
        ge=0,
        description="estimatedTime for a job that starts at once: fetch, probe and encode of a short video.",
    )
    estimate_per_queued_seconds: int = Field(
        default=5,
        ge=0,
        description="estimatedTime added per job already queued ahead (assumes ~4 slots of ~20 s jobs).",
    )

    # --- input limits -----------------------------------------------------------------------
    max_body_bytes: int = Field(
        default=1 << 20,
        ge=1024,
        description="JSON bodies; 10 jobs with 2048-char URLs are ~30 KiB, 1 MiB leaves room.",
    )
    max_upload_bytes: int = Field(
        default=5 * 1000**3, ge=1, description="Uploads (5 GB per docs/contract.md)."
    )
    upload_quota_bytes: int = Field(
        default=20 * 1000**3,
        ge=0,
        description="Bytes of uploads one tenant may keep in the store at once (413 QUOTA_EXCEEDED "
        "past it); 0 = no limit. 20 GB: four uploads of the maximum size, so that a few tenants "
        "cannot fill a 100 GiB store between two expiries.",
    )
    upload_quota_count: int = Field(
        default=100,
        ge=0,
        description="Uploads one tenant may keep in the store at once; 0 = no limit. Uploads expire "
        "(the operator's upload_retention_seconds), so this bounds a day's uploads per tenant.",
    )
    max_json_depth: int = Field(default=16, ge=4, description="Our bodies nest 4 deep; more is abuse.")
    allow_cidrs: str = Field(
        default="",
        description="Comma-separated CIDRs exempt from the address guard for source/webhook URLs "
        "(default empty: private, loopback, link-local and metadata addresses are refused).",
    )

    # --- submission-time name resolution ----------------------------------------------------
    # Every source and webhook host is resolved and checked before a batch is accepted. The
    # system resolver blocks a thread per lookup and cannot be interrupted, so lookups get
    # threads of their own, bounded, and each request a time budget; probes and auth never wait
    # on them.
    resolve_threads: int = Field(
        default=16,
        ge=1,
        description="Host lookups in flight at once in this process (one thread each). A lookup "
        "whose caller gave up keeps its thread until the system resolver answers or gives up "
        "(glibc: 2 x 5 s by default); one name is looked up once at a time however many ask.",
    )
    resolve_timeout_seconds: float = Field(
        default=3.0,
        gt=0,
        description="Longest wait for one host name (a free lookup slot included). An in-cluster "
        "resolver answers in milliseconds and a cold cache in well under a second.",
    )
    resolve_deadline_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Longest wait for all of one request's host names. Past it, or past a name's "
        "timeout, the submission is refused with 503 SERVICE_UNAVAILABLE (Retry-After) naming "
        "the fields not checked; nothing is created.",
    )
    resolve_per_request: int = Field(
        default=4,
        ge=1,
        description="Host lookups one request runs at once (a batch has up to 21 URLs), so one "
        "request cannot take every lookup slot.",
    )

    # --- store ------------------------------------------------------------------------------
    store_type: StoreType = Field(
        default="volume",
        description="`volume`: a directory (`store_root`; in a cluster a ReadWriteMany volume the "
        "workers mount too); `s3`: an S3-compatible object store (`s3`).",
    )
    store_root: Path = Field(default=Path("/data"), description="Root of the filesystem store.")
    s3: S3Settings | None = Field(
        default=None,
        description="The object store, with store_type s3: AUDIO_EXTRACT_API_S3__BUCKET, "
        "S3__ENDPOINT_URL, S3__PRESIGN_ENDPOINT_URL (the address clients reach, when it differs), "
        "S3__REGION, S3__PREFIX, S3__ADDRESSING_STYLE, S3__CA_BUNDLE. Credentials come from the "
        "standard AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, web identity, instance "
        "metadata) unless S3__ACCESS_KEY_ID and S3__SECRET_ACCESS_KEY are set.",
    )
    download_url_seconds: int = Field(
        default=3600,
        ge=1,
        le=PRESIGN_MAX_SECONDS,
        description="Validity of a presigned download URL (an object store's outputFile.url and the "
        "download's redirect), from the response that carries it: long enough to start a large "
        "download on a slow link, short enough that a leaked URL soon stops working.",
    )
    upload_url_seconds: int = Field(
        default=3600,
        ge=1,
        le=PRESIGN_MAX_SECONDS,
        description="Validity of a direct upload's PUT URL. Its declared size counts against the "
        "tenant's quota until then, or until its bytes have arrived.",
    )
    store_min_free_bytes: int = Field(
        default=2 * 1024**3,
        ge=0,
        description="Free bytes the store keeps for the work already accepted: below it (an upload "
        "counts its declared size) uploads, batches and extracts get 503 STORE_FULL. 2 GiB: the "
        "outputs of the extractions running at once (a long lossless one is ~1 GB).",
    )
    store_full_retry_after_seconds: int = Field(
        default=60,
        ge=1,
        description="Retry-After on STORE_FULL: space comes back as retention passes (every minute) "
        "expire outputs and uploads.",
    )

    @model_validator(mode="after")
    def _s3_needs_its_settings(self) -> Settings:
        if self.store_type == "s3" and self.s3 is None:
            raise ValueError(
                "store_type s3 needs the object store's settings: at least AUDIO_EXTRACT_API_S3__BUCKET "
                "(and AUDIO_EXTRACT_API_S3__ENDPOINT_URL for a store other than AWS S3)"
            )
        return self

    @field_validator("public_prefix")
    @classmethod
    def _no_trailing_slash(cls, v: str) -> str:
        return "/" + v.strip("/") if v.strip("/") else ""
