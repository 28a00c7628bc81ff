"""The batch/v1 Job running one extraction: a pure function of the batch, the job index, settings
and, with an object store, the URLs presigned for it (``WorkerUrls``, made by ``worker_urls``).

Names are deterministic (``ids.job_object_name``) so a repeated create hits "already exists"
instead of duplicating work; the owner reference makes deleting a batch delete its Jobs. Jobs are
created suspended, and the operator (or Kueue) admits them by unsuspending; a Job the operator
has a free slot for as it makes it, with nothing queued ahead, is made unsuspended instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from audio_extract_common import ids
from audio_extract_common.batch_resource import API_VERSION, KIND
from audio_extract_common.batch_spec import BatchSpec
from audio_extract_common.results import EXIT_PERMANENT
from audio_extract_common.store import upload_key
from audio_extract_common.timefmt import iso
from audio_extract_common.worker_env import WorkerEnv

from .settings import Settings
from .tokens import progress_token

CONTAINER = "worker"
# tini as PID 1: the kernel drops signals to PID 1 that it has no handler for, so a worker still
# starting would ignore the SIGTERM of a cancel and linger for the whole grace period
WORKER_COMMAND = ["tini", "--", "python", "-m", "audio_extract_worker"]
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "audio-extract-operator"
PRIORITY_ANNOTATION = "audioextract.io/priority"
INDEX_ANNOTATION = "audioextract.io/index"
BATCH_CREATED_ANNOTATION = "audioextract.io/batch-created"
"""The batch's creationTimestamp: admission is FIFO by batch, not by when a Job object was made."""
ADMIT_BY_ANNOTATION = "audioextract.io/admit-by"
"""With an object store: admitted after this time, the Job's presigned URLs could expire before its
deadline does, so the operator makes it again instead (``presign_queue_allowance_seconds``)."""
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"  # a WorkloadPriorityClass's name
NONROOT_UID = 65532
"""The distroless "nonroot" user the image runs as."""


@dataclass(frozen=True)
class WorkerUrls:
    """What a worker needs of an object store, presigned by the operator for one Job: a PUT for its
    output object (``output_key``), a GET for its uploaded source, if any, both valid until
    ``expires_at``. Bearer credentials for those two objects: never logged."""

    output_url: str
    output_key: str
    expires_at: datetime
    source_url: str | None = None

    def __repr__(self) -> str:
        return f"WorkerUrls(output_key={self.output_key!r}, expires_at={self.expires_at!r})"


def job_labels(key: str, index: int) -> dict[str, str]:
    """Labels on a Job and its pods: which batch and job they run (label values may hold ``_``)."""
    return {
        MANAGED_BY_LABEL: MANAGED_BY,
        "app.kubernetes.io/name": "audio-extract-worker",
        ids.KEY_LABEL: key,
        ids.BATCH_LABEL: ids.batch_id(key),
        ids.JOB_LABEL: ids.job_id(key, index),
    }


def worker_env(
    spec: BatchSpec,
    key: str,
    index: int,
    settings: Settings,
    tenant: str | None = None,
    urls: WorkerUrls | None = None,
) -> WorkerEnv:
    """What the worker of ``spec.jobs[index]`` is told; None: left to the worker's default."""
    job_id = ids.job_id(key, index)
    job = spec.jobs[index].model_dump(mode="json", exclude_none=True)
    values: dict[str, Any] = {
        "job": json.dumps({"jobId": job_id, "batchId": ids.batch_id(key), **job}, separators=(",", ":")),
        # a volume's mount, or the two objects this job may touch in an object store
        "store_root": settings.store.mount_path if urls is None else None,
        "output_url": urls.output_url if urls else None,
        "output_key": urls.output_key if urls else None,
        "source_url": urls.source_url if urls else None,
        "scratch_dir": settings.worker.scratch_mount_path,
        "result_path": TERMINATION_MESSAGE_PATH,
        "allow_cidrs": settings.worker.allow_cidrs or None,
        "connect_timeout": settings.worker.connect_timeout,
        "read_timeout": settings.worker.read_timeout,
        "max_source_bytes": settings.worker.max_source_bytes,
        "max_source_seconds": settings.worker.max_source_seconds,
        "max_output_bytes": settings.worker.max_output_bytes,
        # its log lines as the operator's, naming the batch's tenant
        "log_format": settings.log_format,
        "tenant": tenant,
    }
    secret = settings.progress.secret.get_secret_value()
    if settings.progress.url and secret:
        values["progress_url"] = settings.progress.url
        values["progress_token"] = progress_token(secret, job_id)
    return WorkerEnv(**{k: v for k, v in values.items() if v is not None})


def store_mounts(source: Any, job_id: str, root: str) -> list[dict[str, Any]]:
    """The worker sees its own output directory (writable) and its own upload (read-only), at the
    paths the store's keys name, and nothing else of the store: an exploited ffmpeg cannot read or
    rewrite other jobs' or tenants' files. (The upload id is `upl_<16 hex>`, checked by the CRD.)"""
    mounts: list[dict[str, Any]] = [{"name": "store", "mountPath": f"{root}/{job_id}", "subPath": job_id}]
    if source.type == "upload" and source.file:
        key = upload_key(source.file)
        mounts.append({"name": "store", "mountPath": f"{root}/{key}", "subPath": key, "readOnly": True})
    return mounts


def build_job(
    batch: Mapping[str, Any],
    index: int,
    settings: Settings,
    urls: WorkerUrls | None = None,
    suspended: bool = True,
) -> dict[str, Any]:
    """The Job for ``batch.spec.jobs[index]``; with an object store (``urls``) it mounts no store.
    Suspended unless admission has a slot for it as it is made (``suspended=False``)."""
    if (settings.store.type == "s3") != (urls is not None):
        raise ValueError(f"a {settings.store.type} store's Job takes {'its' if urls is None else 'no'} URLs")
    meta = batch["metadata"]
    spec = BatchSpec.model_validate(batch["spec"])
    key = ids.derived_batch_key(batch)
    job_id = ids.job_id(key, index)
    priority = str(spec.jobs[index].options.priority)
    labels = job_labels(key, index)
    job_labels_ = dict(labels)
    if settings.admission.kueue_queue:
        job_labels_[KUEUE_QUEUE_LABEL] = settings.admission.kueue_queue
        if workload_priority := settings.admission.kueue_priority_classes.get(priority):
            job_labels_[KUEUE_PRIORITY_LABEL] = workload_priority

    # an object store's worker has only its URLs: no volume, nothing of other jobs to see
    mounts = [] if urls else store_mounts(spec.jobs[index].source, job_id, settings.store.mount_path)
    claim = {"claimName": settings.store.claim}
    volumes = [] if urls else [{"name": "store", "persistentVolumeClaim": claim}]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NONROOT_UID,
            "runAsGroup": NONROOT_UID,
            "fsGroup": NONROOT_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": CONTAINER,
                "image": settings.worker.image,
                "imagePullPolicy": settings.worker.image_pull_policy,
                "command": list(WORKER_COMMAND),
                "env": worker_env(
                    spec, key, index, settings, (meta.get("labels") or {}).get(ids.TENANT_LABEL), urls
                ).to_env(),
                "resources": {
                    "requests": {
                        "cpu": settings.worker.cpu_request,
                        "memory": settings.worker.memory_request,
                        "ephemeral-storage": settings.worker.ephemeral_storage_request,
                    },
                    "limits": {
                        "cpu": settings.worker.cpu_limit,
                        "memory": settings.worker.memory_limit,
                        "ephemeral-storage": settings.worker.ephemeral_storage_limit,
                    },
                },
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "runAsNonRoot": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "terminationMessagePath": TERMINATION_MESSAGE_PATH,
                "terminationMessagePolicy": "File",
                "volumeMounts": [
                    *mounts,
                    {"name": "scratch", "mountPath": settings.worker.scratch_mount_path},
                ],
            }
        ],
        "volumes": [
            *volumes,
            {"name": "scratch", "emptyDir": {"sizeLimit": settings.worker.scratch_size_limit}},
        ],
    }
    annotations = {
        PRIORITY_ANNOTATION: priority,
        INDEX_ANNOTATION: str(index),
        BATCH_CREATED_ANNOTATION: meta.get("creationTimestamp") or "",
    }
    if urls is not None:
        admit_by = urls.expires_at - timedelta(seconds=settings.worker.active_deadline_seconds)
        annotations[ADMIT_BY_ANNOTATION] = iso(admit_by)
    if settings.worker.service_account:
        pod_spec["serviceAccountName"] = settings.worker.service_account
    priority_class = settings.worker.priority_class(priority)
    if priority_class:
        pod_spec["priorityClassName"] = priority_class

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": ids.job_object_name(job_id),
            "namespace": meta["namespace"],
            "labels": job_labels_,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "suspend": suspended,
            "backoffLimit": settings.worker.backoff_limit,
            "activeDeadlineSeconds": settings.worker.active_deadline_seconds,
            "ttlSecondsAfterFinished": settings.worker.ttl_seconds_after_finished,
            "podReplacementPolicy": "Failed",
            "podFailurePolicy": {
                "rules": [
                    # The worker exits EXIT_PERMANENT for bad input: retrying cannot help.
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": CONTAINER,
                            "operator": "In",
                            "values": [EXIT_PERMANENT],
                        },
                    },
                    # Evictions and preemptions are not the worker's fault: retry without counting them.
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                ]
            },
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def owned_by(job: Mapping[str, Any], batch_uid: str) -> bool:
    """Whether an existing Job is ours to keep (a same-named foreign Job is a permanent problem)."""
    refs = job.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("uid") == batch_uid and ref.get("controller") for ref in refs)
