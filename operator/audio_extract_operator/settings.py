"""The operator's one settings object: environment variables prefixed ``AUDIO_EXTRACT_OPERATOR_``.

Built once at start-up (``Settings()``) and kept in the operator's state; pure builders take it as an
argument, so tests construct it directly. The tunables are grouped by concern, like kopf's own
settings: a group's field comes from ``AUDIO_EXTRACT_OPERATOR_<GROUP>__<FIELD>`` (e.g.
``AUDIO_EXTRACT_OPERATOR_ADMISSION__MAX_RUNNING``, ``..._STORE__S3__BUCKET``), the few process-wide
ones from ``AUDIO_EXTRACT_OPERATOR_<FIELD>``. Every tunable says its unit and why it exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from audio_extract_common.jsonlog import LogFormat
from audio_extract_common.objectstore import S3Settings

from .webhooks.config import WebhookSettings

ENV_PREFIX = "AUDIO_EXTRACT_OPERATOR_"
NESTED = "__"
SIGV4_MAX_SECONDS = 7 * 86400
"""The longest a SigV4 presigned URL may be valid: S3 refuses a longer one outright."""


class LeaderSettings(BaseModel):
    """Which replica operates: ``AUDIO_EXTRACT_OPERATOR_LEADER__*``."""

    lease: str = Field(
        default="",
        description="`<namespace>/<name>` of the Lease replicas elect a leader on (only the holder "
        "operates, the others stand by); empty = no election: run one replica.",
    )
    pod_name: str = Field(
        default="",
        description="This replica's pod (downward API): the leader labels it so that the progress "
        "Service sends workers to the leader only.",
    )


class WorkerJobSettings(BaseModel):
    """The Job each extraction runs: ``AUDIO_EXTRACT_OPERATOR_WORKER__*``."""

    image: str = Field(default="audio-extract:latest", description="Image with the worker (and ffmpeg).")
    image_pull_policy: str = Field(default="IfNotPresent", description="The worker container's pull policy.")
    service_account: str | None = Field(
        default=None, description="ServiceAccount of job pods (its token is never mounted); unset = default."
    )
    scratch_mount_path: str = Field(
        default="/scratch", description="Where job pods mount their scratch emptyDir."
    )
    scratch_size_limit: str = Field(
        default="4Gi",
        description="Scratch emptyDir size limit: the downloaded source plus the encoded output.",
    )
    cpu_request: str = Field(default="500m", description="Worker CPU request (scheduling/Kueue quota).")
    cpu_limit: str = Field(default="2", description="Worker CPU limit.")
    memory_request: str = Field(default="256Mi", description="Worker memory request.")
    memory_limit: str = Field(
        default="1Gi", description="Worker memory limit (ffmpeg streams; no big buffers)."
    )
    ephemeral_storage_request: str = Field(
        default="1Gi", description="Worker node-disk request (scratch and logs) the scheduler reserves."
    )
    ephemeral_storage_limit: str = Field(
        default="4352Mi",
        description="Worker node-disk limit: the kubelet evicts a pod whose scratch plus logs pass it, "
        "so it stays above scratch_size_limit (here 4Gi + 256Mi for logs).",
    )
    active_deadline_seconds: int = Field(
        default=1800, ge=1, description="Seconds a Job may run (all attempts) before it fails as TIMEOUT."
    )
    backoff_limit: int = Field(default=2, ge=0, description="Pod retries for transient failures.")
    ttl_seconds_after_finished: int = Field(
        default=3600,
        ge=0,
        description="Seconds a finished Job (and its pods) is kept; its outcome is already in status.",
    )
    allow_cidrs: str = Field(
        default="",
        description="Passed to the worker's ALLOW_CIDRS (private source addresses it may fetch; dev/tests).",
    )
    connect_timeout: float | None = Field(default=None, description="Worker CONNECT_TIMEOUT, seconds.")
    read_timeout: float | None = Field(default=None, description="Worker READ_TIMEOUT, seconds.")
    max_source_bytes: int | None = Field(default=None, description="Worker MAX_SOURCE_BYTES.")
    max_source_seconds: float | None = Field(default=None, description="Worker MAX_SOURCE_SECONDS.")
    max_output_bytes: int | None = Field(default=None, description="Worker MAX_OUTPUT_BYTES.")
    priority_classes: dict[str, str] = Field(
        default_factory=dict,
        description='PriorityClass name per job priority (JSON, e.g. {"high": "audio-extract-high"}); '
        "a priority without an entry gets none.",
    )

    def priority_class(self, priority: str) -> str | None:
        return self.priority_classes.get(priority)


class AdmissionSettings(BaseModel):
    """How many extractions run, and who admits them: ``AUDIO_EXTRACT_OPERATOR_ADMISSION__*``."""

    max_running: int = Field(default=4, ge=1, description="Extractions running at once, cluster-wide.")
    kueue_queue: str | None = Field(
        default=None, description="Kueue LocalQueue name: set it and Kueue, not the operator, admits Jobs."
    )
    kueue_priority_classes: dict[str, str] = Field(
        default_factory=dict,
        description="Kueue WorkloadPriorityClass name per job priority (JSON, e.g. "
        '{"high": "audio-extract-high"}), the order in which Kueue admits and preempts; '
        "a priority without an entry gets Kueue's default.",
    )
    interval: float = Field(
        default=1.0, gt=0, description="Seconds between admission passes (changes also wake it at once)."
    )
    create_concurrency: int = Field(
        default=16,
        ge=1,
        description="Batches whose Jobs are created at once, and admitted at once; a burst is worked "
        "through in arrival order, so the first batches start while later ones are still being created.",
    )


class ProgressSettings(BaseModel):
    """The endpoint workers report progress to: ``AUDIO_EXTRACT_OPERATOR_PROGRESS__*``."""

    secret: SecretStr = Field(
        default=SecretStr(""),
        description="HMAC key of per-job progress tokens; must survive restarts (tokens are in the Jobs). "
        "Empty disables progress reporting.",
    )
    url: str | None = Field(
        default=None, description="URL job pods post progress to (the operator's Service); unset disables it."
    )
    host: str = Field(default="0.0.0.0", description="Bind address of the progress endpoint.")
    port: int = Field(default=8081, description="Port of the progress endpoint; 0 = none.")
    flush_interval: float = Field(
        default=1.0, gt=0, description="Seconds: progress is written to a batch's status at most this often."
    )


class StoreSettings(BaseModel):
    """Where inputs and outputs live: ``AUDIO_EXTRACT_OPERATOR_STORE__*``."""

    type: Literal["volume", "s3"] = Field(
        default="volume",
        description="`volume`: a directory (a ReadWriteMany claim, `claim`) every worker mounts "
        "its own part of; `s3`: an S3-compatible object store (`s3`), which workers reach through "
        "URLs the operator presigns for each Job, with no credentials and no volume.",
    )
    s3: S3Settings | None = Field(
        default=None,
        description="The object store when `type` is `s3`, from `AUDIO_EXTRACT_OPERATOR_STORE__S3__BUCKET`, "
        "`..._S3__ENDPOINT_URL`, `..._S3__PRESIGN_ENDPOINT_URL` (the address workers reach), "
        "`..._S3__REGION`, `..._S3__PREFIX`, `..._S3__ADDRESSING_STYLE`, `..._S3__CA_BUNDLE`. "
        "Credentials come from the standard AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, web "
        "identity, instance metadata) unless `..._S3__ACCESS_KEY_ID` and `..._S3__SECRET_ACCESS_KEY` "
        "are set.",
    )
    claim: str = Field(
        default="audio-extract-store", description="PersistentVolumeClaim (ReadWriteMany) holding the store."
    )
    mount_path: str = Field(default="/data", description="Where job pods mount the store.")
    root: Path | None = Field(
        default=None,
        description="The volume store as the operator sees it (`type` volume; for expiring "
        "outputs and uploads); unset = keep files.",
    )
    presign_queue_allowance_seconds: int = Field(
        default=6 * 3600,
        ge=300,
        description="Seconds a Job may wait suspended for admission and still run with the URLs it "
        "was created with (`type` s3): its URLs are valid for the worker's `active_deadline_seconds` "
        "plus this, at most 7 days (SigV4's limit). Longer: fewer Jobs are made again, but whoever reads "
        "a Job (its env holds the URLs) can write that output or read that upload for longer. "
        "Shorter: a Job that waited longer is deleted and created again with fresh URLs when the "
        "operator admits it (its place in the queue is kept); with Kueue, which admits by itself, "
        "a Job admitted after its URLs expired fails, so set this above the longest queueing "
        "expected. At least 300: a Job waits that long between its creation and an admission pass.",
    )
    usage_interval: float = Field(
        default=300.0,
        ge=0,
        description="Seconds between measurements of an object store's usage (objects and bytes under "
        "the prefix, by listing them: one request per 1,000 objects, so not at every scrape); 0 = "
        "never. A volume is measured at each scrape instead (statvfs, cheap).",
    )

    @property
    def volume_root(self) -> Path | None:
        """The volume store's directory; None for an object store, or a volume whose files stay."""
        return self.root if self.type == "volume" else None


class RetentionSettings(BaseModel):
    """What is kept how long: ``AUDIO_EXTRACT_OPERATOR_RETENTION__*``."""

    output_seconds: int = Field(
        default=86400, ge=0, description="Seconds after completion an output is kept (contract: 24 h)."
    )
    record_seconds: int = Field(
        default=7 * 86400, ge=0, description="Seconds after a batch finished before the resource is deleted."
    )
    interval: float = Field(
        default=60.0,
        gt=0,
        description="Seconds between retention passes (they also resync unfinished batches with their Jobs).",
    )
    sweep_orphan_outputs: bool = Field(
        default=True,
        description="Retention passes remove outputs whose batch no longer exists in the watched "
        "namespaces (deleted while the operator was down). Off when the store also holds outputs of "
        "batches in namespaces this operator does not watch.",
    )
    orphan_grace_seconds: int = Field(
        default=3600,
        ge=0,
        description="Seconds an output must be untouched before a retention pass may remove it as "
        "orphaned: a batch created after the pass listed the batches is not mistaken for a gone one.",
    )
    upload_seconds: int = Field(
        default=86400,
        ge=0,
        description="Seconds an upload is kept after it was uploaded (or last named by a submission) "
        "and after the last job using it ended, whichever is later; never while a job using it is "
        "unfinished (contract: 24 h). Expired, it is an unknown upload.",
    )
    partial_upload_grace_seconds: int = Field(
        default=3600,
        ge=0,
        description="Seconds a partial write (a volume's `.part` file, an object store's incomplete "
        "multipart upload: a writer killed mid-write) must be untouched before a retention pass "
        "removes it: an upload still arriving writes all the time, and one stalled this long has "
        "been given up by its client. Also how old an owner marker of an absent upload must be "
        "before it goes (a direct upload arrives after its marker), and for a direct upload how "
        "long past its URL's expiry (a PUT begun in time ends a little later).",
    )


class KopfSettings(BaseModel):
    """How kopf runs the handlers and watches: ``AUDIO_EXTRACT_OPERATOR_KOPF__*``."""

    handler_backoff: float = Field(
        default=2.0, gt=0, description="Seconds before a failed handler's first retry (doubling, 60 at most)."
    )
    watch_server_timeout: int = Field(
        default=300, description="Seconds the API server keeps a watch open (stale watches get restarted)."
    )
    log_level: str = Field(
        default="WARNING", description="Level of kopf's per-event lines (INFO logs every handler call)."
    )
    liveness_port: int = Field(default=0, description="Port of kopf's /healthz liveness endpoint; 0 = none.")


class Settings(BaseSettings):
    """Operator settings, one group per concern."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", env_nested_delimiter=NESTED)

    # --- where it runs, and how it logs ---------------------------------------------------------
    namespaces: list[str] = Field(
        default_factory=list,
        description="Namespaces to watch (JSON list); empty = cluster-wide (needs a ClusterRole).",
    )
    kubeconfig: str | None = Field(
        default=None,
        description="Kubeconfig file for the operator's own clients; unset = in-cluster or KUBECONFIG.",
    )
    list_page_size: int = Field(
        default=500,
        ge=1,
        description="Objects per page when listing batches or Jobs (kopf's listings too): memory "
        "holds one page, not every retained batch at once.",
    )
    log_level: str = Field(default="INFO", description="Level of the operator's own log lines.")
    log_format: LogFormat = Field(
        default="text",
        description="`json`: one JSON object per line, with tenant, batchId and jobId fields on the lines "
        "about them (for a log system; the chart's default); `text`: for people (`make dev`). The "
        "workers it starts log the same way.",
    )

    # --- the groups ---------------------------------------------------------------------------
    leader: LeaderSettings = Field(default_factory=LeaderSettings)
    worker: WorkerJobSettings = Field(default_factory=WorkerJobSettings)
    admission: AdmissionSettings = Field(default_factory=AdmissionSettings)
    progress: ProgressSettings = Field(default_factory=ProgressSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    kopf: KopfSettings = Field(default_factory=KopfSettings)

    @model_validator(mode="after")
    def _store_complete(self) -> Settings:
        if self.store.type == "s3":
            if self.store.s3 is None:
                prefix = f"{ENV_PREFIX}STORE{NESTED}S3{NESTED}"
                raise ValueError(
                    "the store's type is s3 but the object store is not set: give at least "
                    f"{prefix}BUCKET (and {prefix}ENDPOINT_URL for a store other than AWS S3)"
                )
            if self.worker.active_deadline_seconds > SIGV4_MAX_SECONDS:
                raise ValueError(
                    f"the worker's active_deadline_seconds is above {SIGV4_MAX_SECONDS} (7 days): no "
                    "presigned URL for a worker can stay valid that long"
                )
        return self

    @property
    def listed_namespaces(self) -> list[str | None]:
        """Where the loops list batches and Jobs: each namespace watched, or every namespace (None)
        when cluster-wide."""
        return [*self.namespaces] if self.namespaces else [None]

    @property
    def worker_url_seconds(self) -> int:
        """How long the URLs presigned for a Job stay valid (``presign_queue_allowance_seconds``)."""
        allowance = self.store.presign_queue_allowance_seconds
        return min(self.worker.active_deadline_seconds + allowance, SIGV4_MAX_SECONDS)
