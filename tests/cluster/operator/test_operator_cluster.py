"""The operator on the local cluster, under the chart's RBAC: real API server, Job controller,
scheduler, and the node running the worker in containers of the project's image on generated
media served from the node's address."""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from audio_extract_common.batch_resource import API_VERSION, GROUP, KIND, PLURAL, VERSION
from audio_extract_localcluster.images import PROJECT_IMAGE
from support.media_server import MediaServer
from support.operator_process import OperatorProcess
from support.waiting import wait_for

pytestmark = pytest.mark.cluster

SAMPLES = Path(__file__).resolve().parents[3] / "crds" / "samples"
INVALID_FIELDS = {  # invalid sample -> the field kubectl's refusal must name
    "bad-format.yaml": "spec.jobs[0].output.format",
    "flac-with-bitrate.yaml": "spec.jobs[0].output.bitrate",
    "eleven-jobs.yaml": "spec.jobs",
    "ftp-url.yaml": "spec.jobs[0].source.url",
    "port-out-of-range.yaml": "spec.jobs[0].source.url",
    "bitrate-out-of-range.yaml": "spec.jobs[0].output.bitrate",
    "trim-out-of-order.yaml": "spec.jobs[0].output.trim",
    "opus-sample-rate.yaml": "spec.jobs[0].output.sampleRate",
    "bad-channels.yaml": "spec.jobs[0].output.channels",
    "negative-audio-track.yaml": "spec.jobs[0].source.audioTrack",
    "huge-audio-track.yaml": "spec.jobs[0].source.audioTrack",
    "audio-track-without-language.yaml": "spec.jobs[0].source.audioTrack",
}


def custom(k8s_api: Any) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(k8s_api)


def get_batch(k8s_api: Any, namespace: str, name: str) -> dict[str, Any]:
    return custom(k8s_api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)


def create_batch(k8s_api: Any, namespace: str, name: str, jobs: list[dict[str, Any]], **spec: Any) -> dict:
    body = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {"jobs": jobs, **spec},
    }
    return custom(k8s_api).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


def url_job(url: str, fmt: str = "wav", priority: str = "normal", **output: Any) -> dict[str, Any]:
    return {
        "source": {"type": "url", "url": url},
        "output": {"format": fmt, **output},
        "options": {"priority": priority},
    }


def finished(batch: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Complete" and c["status"] == "True"
        for c in (batch.get("status") or {}).get("conditions") or []
    )


def wait_finished(k8s_api: Any, namespace: str, name: str, timeout: float = 60) -> dict[str, Any]:
    return wait_for(
        lambda: (b := get_batch(k8s_api, namespace, name)) and finished(b) and b, timeout, f"{name} Complete"
    )


def jobs_in(k8s_api: Any, namespace: str) -> list[Any]:
    return kubernetes.client.BatchV1Api(k8s_api).list_namespaced_job(namespace).items


def pods_in(k8s_api: Any, namespace: str, selector: str = "") -> list[Any]:
    return kubernetes.client.CoreV1Api(k8s_api).list_namespaced_pod(namespace, label_selector=selector).items


def diagnose(cluster: Any, namespace: str) -> str:
    """What the cluster looked like, for assertion messages."""
    out = cluster.kubectl(
        "-n", namespace, "get", "extractionbatches,jobs,pods,pvc", "-o", "wide", check=False
    )
    ev = cluster.kubectl("-n", namespace, "get", "events", check=False)
    return f"{out.stdout}{out.stderr}\n{ev.stdout[-3000:]}"


# --- samples -------------------------------------------------------------------------------------


def test_valid_samples_run_to_completion(
    cluster: Any,
    namespace: str,
    media: MediaServer,
    k8s_api: Any,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    op = start_operator(admission__max_running=4)
    names = []
    for path in sorted(SAMPLES.glob("*.yaml")):
        text = path.read_text().replace("http://host.audio-extract.internal:8080/videos", media.url)
        cluster.kubectl("-n", namespace, "apply", "-f", "-", input=text)
        names.append(yaml.safe_load(text)["metadata"]["name"])
    for name in names:
        r = cluster.kubectl(
            "-n",
            namespace,
            "wait",
            "--for=condition=Complete",
            "--timeout=90s",
            f"extractionbatch/{name}",
            check=False,
        )
        if r.returncode:
            print(diagnose(cluster, namespace))
        assert r.returncode == 0, r.stderr

    table = cluster.kubectl("-n", namespace, "get", "extractionbatches").stdout.splitlines()
    assert table[0].split() == ["NAME", "JOBS", "COMPLETED", "FAILED", "PHASE", "AGE"]
    for row in table[1:]:
        assert row.split()[1:5] == ["2", "2", "0", "Succeeded"], table

    assert len(jobs_in(k8s_api, namespace)) == 4  # one Job per extraction
    for name in names:
        batch = get_batch(k8s_api, namespace, name)
        status = batch["status"]
        assert batch["metadata"]["labels"]["audioextract.io/key"] == status["batchId"][6:20]
        for entry in status["jobs"]:
            assert entry["status"] == "completed", entry
            out = entry["outputFile"]
            path = op.store_root / out["path"]
            assert path.is_file() and path.stat().st_size == out["size"] > 0
            assert entry["expiresAt"] and entry["startedAt"] and entry["inputFile"]["duration"] > 0
    formats = sorted(
        e["outputFile"]["format"] for n in names for e in get_batch(k8s_api, namespace, n)["status"]["jobs"]
    )
    assert formats == ["aac", "flac", "mp3", "mp3"]
    events = cluster.kubectl(
        "-n",
        namespace,
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=ExtractionBatch",
        "-o",
        "name",
    ).stdout
    assert events.count("\n") >= 6  # started/completed per job, succeeded per batch


def test_invalid_samples_refused_naming_the_field(cluster: Any, namespace: str, crd: None) -> None:
    for name, field in INVALID_FIELDS.items():
        r = cluster.kubectl("-n", namespace, "apply", "-f", str(SAMPLES / "invalid" / name), check=False)
        assert r.returncode != 0, name
        assert field in r.stderr, (name, r.stderr)


# --- admission -------------------------------------------------------------------------------------


def test_running_limit_and_priority_order(
    namespace: str, media: MediaServer, k8s_api: Any, start_operator: Callable[..., OperatorProcess]
) -> None:
    priorities = ["low", "normal", "high", "low", "high", "normal", "low", "normal", "high", "low"]
    order: list[str] = []
    peak = [0]
    stop = threading.Event()

    def watch() -> None:  # every Job change, as the API server reports it
        state: dict[str, tuple[bool, bool]] = {}
        w = kubernetes.watch.Watch()
        for ev in w.stream(
            kubernetes.client.BatchV1Api(k8s_api).list_namespaced_job, namespace, timeout_seconds=120
        ):
            job = ev["object"]
            name = job.metadata.name
            done = any(
                c.type in ("Complete", "Failed") and c.status == "True" for c in (job.status.conditions or [])
            )
            running = not job.spec.suspend and not done
            if running and name not in order:
                order.append(name)
            state[name] = (running, done)
            peak[0] = max(peak[0], sum(1 for r, _ in state.values() if r))
            if stop.is_set() or (len(state) == 10 and all(d for _, d in state.values())):
                w.stop()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    time.sleep(0.5)
    start_operator(admission__max_running=2)
    batch = create_batch(
        k8s_api, namespace, "mixed", [url_job(f"{media.url}/tone.wav", priority=p) for p in priorities]
    )
    status = wait_finished(k8s_api, namespace, "mixed", timeout=120)["status"]
    stop.set()
    watcher.join(timeout=10)
    assert status["completed"] == 10, status
    assert peak[0] <= 2, f"{peak[0]} Jobs ran at once"
    key = batch["metadata"]["uid"].replace("-", "")[:14]
    admitted = [priorities[int(n[-2:], 16) - 1] for n in order]
    rank = {"high": 0, "normal": 1, "low": 2}
    assert [rank[p] for p in admitted] == sorted(rank[p] for p in priorities), admitted
    # FIFO within high: the first two slots go to the first two high jobs (made started together,
    # so either may show first), the next to the third
    first_high, second_high, third_high = (f"job-{key}{i + 1:02x}" for i in (2, 4, 8))
    assert (set(order[:2]), order[2]) == ({first_high, second_high}, third_high), order


# --- outcomes --------------------------------------------------------------------------------------


def test_source_without_audio_fails_after_one_pod(
    namespace: str, media: MediaServer, k8s_api: Any, start_operator: Callable[..., OperatorProcess]
) -> None:
    start_operator()
    create_batch(k8s_api, namespace, "silent", [url_job(f"{media.url}/noaudio.mp4", "mp3")])
    status = wait_finished(k8s_api, namespace, "silent")["status"]
    (entry,) = status["jobs"]
    assert entry["status"] == "failed" and entry["error"]["code"] == "NO_AUDIO_STREAM", entry
    assert status["phase"] == "Failed"
    assert len(pods_in(k8s_api, namespace, f"audioextract.io/job-id={entry['jobId']}")) == 1


def test_output_options_reach_the_worker_through_the_api_server(
    namespace: str, media: MediaServer, k8s_api: Any, start_operator: Callable[..., OperatorProcess]
) -> None:
    """docs/contract.md §7 in a real pod: the asked rate, channels and trim in the file; an audioTrack
    object kept whole by the API server (its untyped schema node prunes nothing); a missing track
    fails NO_AUDIO_STREAM naming it; an audioTrack the schema cannot refuse (a string) is refused by
    the operator (Blocked, InvalidSpec) before any Job exists."""
    op = start_operator()
    source = f"{media.url}/av.mp4"
    trimmed = url_job(source, "ogg", sampleRate=22050, channels=1, trim={"start": 0.25, "end": 0.75})
    by_language = {
        **url_job(source, "mp3"),
        "source": {"type": "url", "url": source, "audioTrack": {"language": "eng"}},
    }
    first = {**url_job(source, "flac"), "source": {"type": "url", "url": source, "audioTrack": 0}}
    create_batch(k8s_api, namespace, "options", [trimmed, by_language, first])
    batch = wait_finished(k8s_api, namespace, "options", timeout=90)
    assert batch["spec"]["jobs"][1]["source"]["audioTrack"] == {"language": "eng"}
    done, missing, chosen = batch["status"]["jobs"]
    assert done["status"] == "completed", done
    out = done["outputFile"]
    assert (out["sampleRate"], out["channels"]) == (22050, 1) and abs(out["duration"] - 0.5) <= 0.05, out
    probed = json.loads(
        subprocess.run(
            ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(op.store_root / out["path"])],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    )["streams"][0]
    assert (probed["codec_name"], probed["sample_rate"], probed["channels"]) == ("vorbis", "22050", 1)
    assert missing["status"] == "failed" and missing["error"]["code"] == "NO_AUDIO_STREAM", missing
    assert "language 'eng'" in missing["error"]["details"] and "1 audio stream" in missing["error"]["details"]
    assert chosen["status"] == "completed", chosen

    create_batch(
        k8s_api,
        namespace,
        "track-string",
        [{**url_job(source, "mp3"), "source": {"type": "url", "url": source, "audioTrack": "eng"}}],
    )

    def blocked() -> dict[str, Any] | None:
        conditions = (get_batch(k8s_api, namespace, "track-string").get("status") or {}).get("conditions")
        return next((c for c in conditions or [] if c["type"] == "Blocked"), None)

    condition = wait_for(blocked, 30, "the batch Blocked")
    assert condition["status"] == "True" and condition["reason"] == "InvalidSpec", condition
    owners = [ref.name for j in jobs_in(k8s_api, namespace) for ref in j.metadata.owner_references or []]
    assert "track-string" not in owners


def test_the_worker_runs_confined_in_the_projects_image(
    cluster: Any,
    namespace: str,
    media: MediaServer,
    k8s_api: Any,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    """What the runtime runs, as crictl sees it: the project's image, uid 65532, a read-only root,
    no capabilities, the memory limit in the container's cgroup."""
    start_operator()
    create_batch(k8s_api, namespace, "confined", [url_job(f"{media.url}/slow/av.mp4", "mp3")])
    wait_for(
        lambda: any(p.status.phase == "Running" for p in pods_in(k8s_api, namespace)), 60, "a running worker"
    )
    label = f"io.kubernetes.pod.namespace={namespace}"
    container = wait_for(
        lambda: cluster.crictl("ps", "--quiet", "--label", label).stdout.strip(), 30, "the container"
    )
    info = json.loads(cluster.crictl("inspect", container).stdout)
    spec = info["info"]["runtimeSpec"]
    assert info["status"]["image"]["image"] == PROJECT_IMAGE
    assert spec["process"]["user"]["uid"] == 65532 and spec["process"]["user"]["gid"] == 65532
    assert spec["root"]["readonly"] is True
    assert spec["process"]["capabilities"].get("effective", []) == []
    assert spec["linux"]["resources"]["memory"]["limit"] == 1024 * 1024 * 1024  # the 1Gi default
    out = cluster.kubectl(
        "-n",
        namespace,
        "exec",
        pods_in(k8s_api, namespace)[0].metadata.name,
        "--",
        "sh",
        "-c",
        "id -u; touch /probe 2>&1 || true",
    ).stdout
    assert out.splitlines()[0] == "65532"
    assert "Read-only file system" in out


def test_a_worker_over_its_memory_limit_fails_with_out_of_memory(
    namespace: str, media: MediaServer, k8s_api: Any, start_operator: Callable[..., OperatorProcess]
) -> None:
    # too little for the worker's Python and ffmpeg: the kernel kills it, every retry too
    start_operator(worker__memory_limit="24Mi", worker__memory_request="24Mi", worker__backoff_limit=1)
    create_batch(k8s_api, namespace, "starved", [url_job(f"{media.url}/av.mp4", "mp3")])
    (entry,) = wait_finished(k8s_api, namespace, "starved", timeout=120)["status"]["jobs"]
    assert entry["status"] == "failed", entry
    assert entry["error"]["code"] == "EXTRACTION_FAILED", entry
    assert entry["error"]["message"] == "the worker ran out of memory"
    assert "OOMKilled: over its memory limit of 24Mi" in entry["error"]["details"]


def test_deadline_is_timeout(
    namespace: str, media: MediaServer, k8s_api: Any, start_operator: Callable[..., OperatorProcess]
) -> None:
    start_operator(worker__active_deadline_seconds=3)
    create_batch(k8s_api, namespace, "slow", [url_job(f"{media.url}/slow/av.mp4", "mp3")])
    (entry,) = wait_finished(k8s_api, namespace, "slow", timeout=60)["status"]["jobs"]
    assert entry["status"] == "failed" and entry["error"]["code"] == "TIMEOUT", entry


def test_cancel_stops_running_and_queued(
    namespace: str, media: MediaServer, k8s_api: Any, start_operator: Callable[..., OperatorProcess]
) -> None:
    start_operator(admission__max_running=1)
    create_batch(
        k8s_api,
        namespace,
        "cancelme",
        [url_job(f"{media.url}/slow/av.mp4", "mp3"), url_job(f"{media.url}/tone.wav")],
    )
    wait_for(
        lambda: any(p.status.phase == "Running" for p in pods_in(k8s_api, namespace)), 30, "a running pod"
    )
    custom(k8s_api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "cancelme", {"spec": {"cancel": True}}
    )
    status = wait_finished(k8s_api, namespace, "cancelme", timeout=30)["status"]
    assert [(j["status"], j["error"]["code"]) for j in status["jobs"]] == [("cancelled", "CANCELLED")] * 2
    assert status["phase"] == "Failed" and status["failed"] == 2
    # well inside the 30 s grace period: tini (PID 1) passes SIGTERM on even to a worker that
    # has not installed its handler yet
    wait_for(
        lambda: not jobs_in(k8s_api, namespace) and not pods_in(k8s_api, namespace),
        20,
        "cancelled Jobs and pods gone",
    )


def test_cancel_single_job(
    namespace: str, media: MediaServer, k8s_api: Any, start_operator: Callable[..., OperatorProcess]
) -> None:
    start_operator(admission__max_running=1)
    create_batch(
        k8s_api,
        namespace,
        "partial",
        [url_job(f"{media.url}/tone.wav"), url_job(f"{media.url}/tone.wav", priority="low")],
    )
    custom(k8s_api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "partial", {"spec": {"cancelJobs": [1]}}
    )
    status = wait_finished(k8s_api, namespace, "partial")["status"]
    assert [j["status"] for j in status["jobs"]] == ["completed", "cancelled"]


def test_deleting_a_batch_deletes_its_jobs_and_pods(
    namespace: str, media: MediaServer, k8s_api: Any, start_operator: Callable[..., OperatorProcess]
) -> None:
    start_operator()
    create_batch(k8s_api, namespace, "doomed", [url_job(f"{media.url}/slow/av.mp4", "mp3")] * 2)
    wait_for(
        lambda: len([p for p in pods_in(k8s_api, namespace) if p.status.phase == "Running"]) == 2,
        30,
        "two running pods",
    )
    custom(k8s_api).delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "doomed")
    wait_for(
        lambda: not jobs_in(k8s_api, namespace) and not pods_in(k8s_api, namespace),
        60,
        "Jobs and pods garbage-collected",
    )


def _running_and_queued(k8s_api: Any, namespace: str, name: str) -> list[str]:
    """Job names once the first job runs and the second waits (admission__max_running=1)."""

    def ready() -> list[str] | None:
        entries = (get_batch(k8s_api, namespace, name).get("status") or {}).get("jobs") or []
        running = [p for p in pods_in(k8s_api, namespace) if p.status.phase == "Running"]
        if [e["status"] for e in entries] == ["processing", "queued"] and running:
            return [e["jobName"] for e in entries]
        return None

    return wait_for(ready, 60, "job 0 running, job 1 queued")


def _assert_deleted_running_job_failed_and_the_other_completed(status: dict[str, Any]) -> None:
    first, second = status["jobs"]
    assert first["status"] == "failed" and first["error"]["code"] == "INTERNAL_ERROR", first
    assert "deleted" in first["error"]["message"], first
    assert second["status"] == "completed", second
    assert status["processing"] == 0 and status["queued"] == 0


def test_a_job_deleted_by_hand_runs_again_or_ends_its_entry(
    namespace: str, media: MediaServer, k8s_api: Any, start_operator: Callable[..., OperatorProcess]
) -> None:
    """A queued job's Job deleted by hand is made again; a running one's ends its entry failed."""
    start_operator(admission__max_running=1)
    create_batch(
        k8s_api,
        namespace,
        "handdeleted",
        [url_job(f"{media.url}/slow/av.mp4", "mp3"), url_job(f"{media.url}/tone.wav")],
    )
    running, queued = _running_and_queued(k8s_api, namespace, "handdeleted")
    batch_api = kubernetes.client.BatchV1Api(k8s_api)
    old_uid = batch_api.read_namespaced_job(queued, namespace).metadata.uid
    batch_api.delete_namespaced_job(queued, namespace, propagation_policy="Background")

    def made_again() -> bool:
        try:
            return batch_api.read_namespaced_job(queued, namespace).metadata.uid != old_uid
        except kubernetes.client.ApiException as e:
            if e.status == 404:
                return False
            raise

    wait_for(made_again, 30, "the queued job's Job created again")
    batch_api.delete_namespaced_job(running, namespace, propagation_policy="Background")
    status = wait_finished(k8s_api, namespace, "handdeleted", timeout=90)["status"]
    _assert_deleted_running_job_failed_and_the_other_completed(status)


def test_jobs_deleted_while_the_operator_was_down_are_noticed(
    namespace: str, media: MediaServer, k8s_api: Any, start_operator: Callable[..., OperatorProcess]
) -> None:
    """No DELETED event ever reaches the operator: its resync of unfinished batches finds them."""
    op = start_operator(admission__max_running=1)
    create_batch(
        k8s_api,
        namespace,
        "unseen",
        [url_job(f"{media.url}/slow/av.mp4", "mp3"), url_job(f"{media.url}/tone.wav")],
    )
    names = _running_and_queued(k8s_api, namespace, "unseen")
    op.stop()
    batch_api = kubernetes.client.BatchV1Api(k8s_api)
    for name in names:
        batch_api.delete_namespaced_job(name, namespace, propagation_policy="Background")
    wait_for(lambda: not jobs_in(k8s_api, namespace), 30, "both Jobs gone")
    op.start()
    status = wait_finished(k8s_api, namespace, "unseen", timeout=90)["status"]
    _assert_deleted_running_job_failed_and_the_other_completed(status)


# --- restarts ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_at_random_moments(
    namespace: str, media: MediaServer, k8s_api: Any, start_operator: Callable[..., OperatorProcess]
) -> None:
    # 20 in every test run (about 2 minutes); AUDIO_EXTRACT_CHAOS_RUNS=100 for the longer soak
    runs, jobs_per_batch = int(os.environ.get("AUDIO_EXTRACT_CHAOS_RUNS", "20")), 3
    rng = random.Random(20260121)
    op = start_operator(admission__max_running=4)
    for run in range(runs):
        name = f"chaos-{run}"
        create_batch(k8s_api, namespace, name, [url_job(f"{media.url}/tone.wav")] * jobs_per_batch)
        time.sleep(rng.uniform(0.0, 2.0))
        op.kill()
        if rng.random() < 0.5:  # sometimes the cluster moves on while the operator is down
            time.sleep(rng.uniform(0.0, 1.5))
        op.start()
        status = wait_finished(k8s_api, namespace, name, timeout=60)["status"]
        assert [j["status"] for j in status["jobs"]] == ["completed"] * jobs_per_batch, (run, status)
        key = status["batchId"][6:20]
        jobs = [j for j in jobs_in(k8s_api, namespace) if j.metadata.labels["audioextract.io/key"] == key]
        assert len(jobs) == jobs_per_batch, (run, [j.metadata.name for j in jobs])
        for job in jobs:  # never recreated: one pod, one success
            assert job.status.succeeded == 1, (run, job.metadata.name, job.status)
            pods = pods_in(k8s_api, namespace, f"batch.kubernetes.io/job-name={job.metadata.name}")
            assert len(pods) == 1, (run, job.metadata.name)
    assert op.starts == runs + 1


# --- retention -----------------------------------------------------------------------------------


def test_outputs_expire_then_the_record_goes(
    namespace: str, media: MediaServer, k8s_api: Any, start_operator: Callable[..., OperatorProcess]
) -> None:
    op = start_operator(retention__output_seconds=1, retention__record_seconds=6, retention__interval=0.5)
    create_batch(k8s_api, namespace, "shortlived", [url_job(f"{media.url}/tone.wav")])
    (entry,) = wait_finished(k8s_api, namespace, "shortlived")["status"]["jobs"]
    output = op.store_root / entry["outputFile"]["path"]
    assert entry["status"] == "completed" and output.is_file()
    wait_for(
        lambda: get_batch(k8s_api, namespace, "shortlived")["status"]["jobs"][0]["expired"],
        15,
        "the entry marked expired",
    )
    assert not output.exists() and not output.parent.exists()

    def gone() -> bool:
        try:
            get_batch(k8s_api, namespace, "shortlived")
        except kubernetes.client.ApiException as e:
            return e.status == 404
        return False

    wait_for(gone, 20, "the batch deleted after record retention")


def test_foreign_job_holding_a_name_is_a_permanent_condition(
    cluster: Any,
    namespace: str,
    media: MediaServer,
    k8s_api: Any,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    foreign = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "job-0123456789abcd01"},
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "x", "image": "x", "command": ["true"]}],
                }
            },
        },
    }
    kubernetes.client.BatchV1Api(k8s_api).create_namespaced_job(namespace, foreign)
    start_operator()
    create_batch(
        k8s_api,
        namespace,
        "batch-0123456789abcd00",
        [url_job(f"{media.url}/tone.wav"), url_job(f"{media.url}/tone.wav")],
    )
    status = wait_finished(k8s_api, namespace, "batch-0123456789abcd00")["status"]
    assert [j["status"] for j in status["jobs"]] == ["failed", "completed"], status["jobs"]
    assert status["jobs"][0]["error"]["code"] == "INTERNAL_ERROR"
    blocked = next(c for c in status["conditions"] if c["type"] == "Blocked")
    assert blocked["status"] == "True" and blocked["reason"] == "JobNameTaken"
    events = cluster.kubectl("-n", namespace, "get", "events", "-o", "jsonpath={.items[*].reason}").stdout
    assert "JobNameTaken" in events
    job = kubernetes.client.BatchV1Api(k8s_api).read_namespaced_job("job-0123456789abcd01", namespace)
    assert job.spec.suspend and not job.metadata.owner_references  # left alone
