"""The operator's one settings object: environment variables prefixed ``AUDIO_EXTRACT_OPERATOR_``.

Built once at start-up (``Settings()``) and kept in kopf's memo; pure builders take it as an
argument, so tests construct it directly. Every tunable says its unit and why it exists.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from audio_extract_common.jsonlog import LogFormat

from .webhooks.config import WebhookSettings

ENV_PREFIX = "AUDIO_EXTRACT_OPERATOR_"


class Settings(WebhookSettings):
    """Operator settings; the ``webhook_*`` fields come from the webhooks package's mixin."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    # --- where it runs -----------------------------------------------------------------------
    namespaces: list[str] = Field(
        default_factory=list,
        description="Namespaces to watch (JSON list); empty = cluster-wide (needs a ClusterRole).",
    )
    kubeconfig: str | None = Field(
        default=None,
        description="Kubeconfig file for the operator's own clients; unset = in-cluster or KUBECONFIG.",
    )
    leader_election_lease: str = Field(
        default="",
        description="`<namespace>/<name>` of the Lease replicas elect a leader on (only the holder "
        "operates, the others stand by); empty = no election: run one replica.",
    )
    pod_name: str = Field(
        default="",
        description="This replica's pod (downward API): the leader labels it so that the progress "
        "Service sends workers to the leader only.",
    )

    # --- the Job each extraction runs ----------------------------------------------------------
    worker_image: str = Field(
        default="audio-extract:latest", description="Image with the worker (and ffmpeg)."
    )
    image_pull_policy: str = Field(default="IfNotPresent", description="The worker container's pull policy.")
    worker_service_account: str | None = Field(
        default=None, description="ServiceAccount of job pods (its token is never mounted); unset = default."
    )
    store_claim: str = Field(
        default="audio-extract-store", description="PersistentVolumeClaim (ReadWriteMany) holding the store."
    )
    store_mount_path: str = Field(default="/data", description="Where job pods mount the store.")
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
    worker_allow_cidrs: str = Field(
        default="",
        description="Passed to the worker's ALLOW_CIDRS (private source addresses it may fetch; dev/tests).",
    )
    worker_connect_timeout: float | None = Field(default=None, description="Worker CONNECT_TIMEOUT, seconds.")
    worker_read_timeout: float | None = Field(default=None, description="Worker READ_TIMEOUT, seconds.")
    worker_max_source_bytes: int | None = Field(default=None, description="Worker MAX_SOURCE_BYTES.")
    priority_classes: dict[str, str] = Field(
        default_factory=dict,
        description='PriorityClass name per job priority (JSON, e.g. {"high": "audio-extract-high"}); '
        "a priority without an entry gets none.",
    )

    # --- admission ----------------------------------------------------------------------------
    max_running: int = Field(default=4, ge=1, description="Extractions running at once, cluster-wide.")
    kueue_queue: str | None = Field(
        default=None, description="Kueue LocalQueue name: set it and Kueue, not the operator, admits Jobs."
    )
    admission_interval: float = Field(
        default=1.0, gt=0, description="Seconds between admission passes (changes also wake it at once)."
    )

    # --- progress -----------------------------------------------------------------------------
    progress_secret: SecretStr = Field(
        default=SecretStr(""),
        description="HMAC key of per-job progress tokens; must survive restarts (tokens are in the Jobs). "
        "Empty disables progress reporting.",
    )
    progress_url: str | None = Field(
        default=None, description="URL job pods post progress to (the operator's Service); unset disables it."
    )
    progress_host: str = Field(default="0.0.0.0", description="Bind address of the progress endpoint.")
    progress_port: int = Field(default=8081, description="Port of the progress endpoint; 0 = none.")
    status_flush_interval: float = Field(
        default=1.0, gt=0, description="Seconds: progress is written to a batch's status at most this often."
    )

    # --- retention ----------------------------------------------------------------------------
    store_root: Path | None = Field(
        default=None,
        description="The store as the operator sees it (for expiring outputs); unset = keep files.",
    )
    output_retention_seconds: int = Field(
        default=86400, ge=0, description="Seconds after completion an output is kept (contract: 24 h)."
    )
    record_retention_seconds: int = Field(
        default=7 * 86400, ge=0, description="Seconds after a batch finished before the resource is deleted."
    )
    retention_interval: float = Field(
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
    upload_retention_seconds: int = Field(
        default=86400,
        ge=0,
        description="Seconds an upload is kept after it was uploaded (or last named by a submission) "
        "and after the last job using it ended, whichever is later; never while a job using it is "
        "unfinished (contract: 24 h). Expired, it is an unknown upload.",
    )
    partial_upload_grace_seconds: int = Field(
        default=3600,
        ge=0,
        description="Seconds a partial upload (a `.part` file the API left when killed mid-upload) "
        "must be untouched before a retention pass removes it: an upload still arriving writes its "
        "file every moment, and one stalled this long has been given up by its client.",
    )
    list_page_size: int = Field(
        default=500,
        ge=1,
        description="Objects per page when listing batches or Jobs (kopf's listings too): memory "
        "holds one page, not every retained batch at once.",
    )

    # --- robustness ---------------------------------------------------------------------------
    handler_timeout: float = Field(default=60.0, gt=0, description="Seconds a kopf handler may take.")
    handler_retries: int = Field(
        default=8, ge=0, description="Retries of a failing handler before giving up."
    )
    handler_backoff: float = Field(default=2.0, gt=0, description="Seconds between handler retries.")
    watch_server_timeout: int = Field(
        default=300, description="Seconds the API server keeps a watch open (stale watches get restarted)."
    )
    log_level: str = Field(default="INFO", description="Level of the operator's own log lines.")
    log_format: LogFormat = Field(
        default="text",
        description="`json`: one JSON object per line, with tenant, batchId and jobId fields on the lines "
        "about them (for a log system; the chart's default); `text`: for people (`make dev`). The "
        "workers it starts log the same way.",
    )
    kopf_log_level: str = Field(
        default="WARNING", description="Level of kopf's per-event lines (INFO logs every handler call)."
    )
    liveness_port: int = Field(default=0, description="Port of kopf's /healthz liveness endpoint; 0 = none.")

    def priority_class(self, priority: str) -> str | None:
        return self.priority_classes.get(priority)
