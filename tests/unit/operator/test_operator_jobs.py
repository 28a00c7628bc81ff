"""Golden tests of the Job builder: the whole manifest is pinned; focused checks say why it matters."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from audio_extract_common import ids
from audio_extract_common.results import EXIT_PERMANENT
from audio_extract_operator.jobs import build_job, owned_by
from audio_extract_operator.settings import Settings
from audio_extract_operator.tokens import progress_token, token_matches
from support.operator_settings import operator_settings

GOLDEN = Path(__file__).parent / "golden"
UID = "0f3c2a1b-9d8e-4c7b-a6f5-e4d3c2b1a098"


def batch(name: str = "batch-0123456789abcd00") -> dict:
    return {
        "apiVersion": "audioextract.io/v1",
        "kind": "ExtractionBatch",
        "metadata": {
            "name": name,
            "namespace": "media",
            "uid": UID,
            "creationTimestamp": "2026-01-21T12:00:00Z",
        },
        "spec": {
            "webhook": "https://hooks.example.org/batch",
            "jobs": [
                {
                    "source": {"type": "url", "url": "https://cdn.example.org/talk.mp4"},
                    "output": {"format": "mp3", "quality": "high"},
                    "options": {"filename": "talk", "priority": "high"},
                },
                {
                    "source": {"type": "upload", "file": "upl_00112233445566ff"},
                    "output": {"format": "aac", "bitrate": "256k"},
                },
            ],
        },
    }


def settings(**kw) -> Settings:
    base = dict(
        worker__image="registry.example.org/audio-extract:1.0",
        progress__secret="s3cret",
        progress__url="http://audio-extract-operator.media.svc:8081/progress",
    )
    base.update(kw)
    return operator_settings(**base)


def check_golden(name: str, obj: dict) -> None:
    path = GOLDEN / name
    text = yaml.safe_dump(obj, sort_keys=False, width=100)
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs; rerun with UPDATE_GOLDEN=1 and review the diff"


def test_job_golden_plain() -> None:
    check_golden("job-plain.yaml", build_job(batch(), 0, settings()))


def test_job_golden_kueue_and_priority_class() -> None:
    s = settings(
        admission__kueue_queue="media-queue",
        worker__priority_classes={"normal": "ae-normal"},
        progress__url=None,
        worker__allow_cidrs="127.0.0.0/8",
        worker__service_account="audio-extract-worker",
    )
    check_golden("job-kueue.yaml", build_job(batch(), 1, s))


def test_kueue_jobs_name_the_workload_priority_class_of_their_priority() -> None:
    s = settings(admission__kueue_queue="media-queue", admission__kueue_priority_classes={"high": "vip"})
    b = batch()
    b["spec"]["jobs"][0]["options"] = {"priority": "high"}
    high, other = build_job(b, 0, s), build_job(b, 1, s)
    assert high["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "vip"
    assert "kueue.x-k8s.io/priority-class" not in other["metadata"]["labels"]  # Kueue's default
    plain = build_job(b, 0, settings(admission__kueue_priority_classes={"high": "vip"}))
    assert "kueue.x-k8s.io/priority-class" not in plain["metadata"]["labels"]  # only with a queue


def test_name_ids_and_owner() -> None:
    job = build_job(batch(), 1, settings())
    assert job["metadata"]["name"] == "job-0123456789abcd02"
    labels = job["metadata"]["labels"]
    assert labels[ids.BATCH_LABEL] == "batch_0123456789abcd00"
    assert labels[ids.JOB_LABEL] == "job_0123456789abcd02"
    assert job["spec"]["template"]["metadata"]["labels"][ids.JOB_LABEL] == "job_0123456789abcd02"
    (ref,) = job["metadata"]["ownerReferences"]
    assert ref == {
        "apiVersion": "audioextract.io/v1",
        "kind": "ExtractionBatch",
        "name": "batch-0123456789abcd00",
        "uid": UID,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert owned_by(job, UID) and not owned_by(job, "someone-else")


def test_kubectl_applied_batch_takes_its_key_from_the_uid() -> None:
    job = build_job(batch("my-batch"), 0, settings())
    assert job["metadata"]["name"] == f"job-{ids.key_from_uid(UID)}01"


def test_worker_contract_env() -> None:
    job = build_job(batch(), 0, settings())
    (c,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert c["command"] == ["tini", "--", "python", "-m", "audio_extract_worker"]
    payload = json.loads(env["AUDIO_EXTRACT_WORKER_JOB"])
    assert payload["jobId"] == "job_0123456789abcd01" and payload["batchId"] == "batch_0123456789abcd00"
    assert payload["output"] == {
        "format": "mp3",
        "quality": "high",
        "normalize": False,
        "preserveMetadata": False,
    }
    assert env["AUDIO_EXTRACT_WORKER_RESULT_PATH"] == c["terminationMessagePath"] == "/dev/termination-log"
    assert env["AUDIO_EXTRACT_WORKER_STORE_ROOT"] == "/data"
    assert env["AUDIO_EXTRACT_WORKER_SCRATCH_DIR"] == "/scratch"
    token = env["AUDIO_EXTRACT_WORKER_PROGRESS_TOKEN"]
    assert token == progress_token("s3cret", "job_0123456789abcd01")
    assert token_matches("s3cret", "job_0123456789abcd01", token)
    assert not token_matches("s3cret", "job_0123456789abcd02", token)


def test_progress_needs_both_url_and_secret() -> None:
    job = build_job(batch(), 0, settings(progress__secret=""))
    names = {e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "AUDIO_EXTRACT_WORKER_PROGRESS_URL" not in names


def test_restricted_and_bounded() -> None:
    job = build_job(batch(), 0, settings(worker__active_deadline_seconds=77, store__claim="claim-x"))
    spec = job["spec"]
    assert spec["suspend"] is True
    assert spec["activeDeadlineSeconds"] == 77
    assert spec["podReplacementPolicy"] == "Failed"
    fail, ignore = spec["podFailurePolicy"]["rules"]
    assert fail["action"] == "FailJob" and fail["onExitCodes"]["values"] == [EXIT_PERMANENT]
    assert ignore == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = pod["containers"][0]["securityContext"]
    assert sc == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["store"]["persistentVolumeClaim"]["claimName"] == "claim-x"
    assert volumes["scratch"]["emptyDir"]["sizeLimit"]
    assert "priorityClassName" not in pod


@pytest.mark.parametrize("index", [0, 1])
def test_deterministic(index: int) -> None:
    assert build_job(batch(), index, settings()) == build_job(batch(), index, settings())


def test_the_worker_mounts_only_its_own_output_directory_and_upload() -> None:
    plain = build_job(batch(), 0, settings())["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert [m for m in plain if m["name"] == "store"] == [
        {"name": "store", "mountPath": "/data/job_0123456789abcd01", "subPath": "job_0123456789abcd01"}
    ]
    uploaded = batch()
    uploaded["spec"]["jobs"][0]["source"] = {"type": "upload", "file": "upl_00112233445566aa"}
    mounts = build_job(uploaded, 0, settings())["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {
        "name": "store",
        "mountPath": "/data/uploads/upl_00112233445566aa",
        "subPath": "uploads/upl_00112233445566aa",
        "readOnly": True,
    } in mounts
    assert not [m for m in mounts if m["name"] == "store" and "subPath" not in m]  # never the whole store


def test_the_worker_logs_like_the_operator_and_names_the_tenant() -> None:
    from audio_extract_common import ids

    labelled = batch()
    labelled["metadata"]["labels"] = {ids.TENANT_LABEL: "acme-media"}
    env = {
        e["name"]: e.get("value")
        for e in build_job(labelled, 0, settings(log_format="json"))["spec"]["template"]["spec"][
            "containers"
        ][0]["env"]
    }
    assert env["AUDIO_EXTRACT_WORKER_LOG_FORMAT"] == "json"
    assert env["AUDIO_EXTRACT_WORKER_TENANT"] == "acme-media"
    plain = build_job(batch(), 0, settings())["spec"]["template"]["spec"]["containers"][0]["env"]
    assert "AUDIO_EXTRACT_WORKER_TENANT" not in {e["name"] for e in plain}  # a batch without a tenant
