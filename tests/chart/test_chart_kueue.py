"""The chart in Kueue mode: the queue label, the WorkloadPriorityClass of each job priority (given,
or the chart's own), the classes the chart creates, and the one extra right the operator needs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from support.chart import env_of, find, operator_settings, render, role_rules, sample_batch, worker_job

pytestmark = pytest.mark.chart

KUEUE = {
    "worker": {
        "kueueQueueName": "media",
        "kueuePriorityClassNames": {"high": "vip"},
        "kueuePriorityClasses": {"create": True, "values": {"low": 10, "normal": 20, "high": 30}},
    }
}
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
OPERATOR_PREFIX = "AUDIO_EXTRACT_OPERATOR_"


def _grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def test_the_chart_creates_the_classes_the_values_leave_unnamed() -> None:
    objects = render(KUEUE)
    classes = {o["metadata"]["name"]: o["value"] for o in objects if o["kind"] == "WorkloadPriorityClass"}
    assert classes == {"audio-extract-low": 10, "audio-extract-normal": 20}  # high is the given "vip"
    assert not [o for o in render() if o["kind"] == "WorkloadPriorityClass"]


def test_jobs_carry_the_queue_and_their_priority_class(monkeypatch: pytest.MonkeyPatch) -> None:
    objects = render(KUEUE)
    env = env_of(find(objects, "Deployment", "audio-extract-operator"))
    assert json.loads(env[OPERATOR_PREFIX + "ADMISSION__KUEUE_PRIORITY_CLASSES"]) == {
        "low": "audio-extract-low",
        "normal": "audio-extract-normal",
        "high": "vip",
    }
    settings = operator_settings(objects, monkeypatch)
    batch = sample_batch()
    batch["spec"]["jobs"][0]["options"] = {"priority": "high"}
    batch["spec"]["jobs"][1]["options"] = {"priority": "low"}
    high, low = worker_job(settings, batch, 0), worker_job(settings, batch, 1)
    assert high["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "media"
    assert high["metadata"]["labels"][PRIORITY_LABEL] == "vip"
    assert low["metadata"]["labels"][PRIORITY_LABEL] == "audio-extract-low"
    assert high["spec"]["suspend"] is True  # Kueue unsuspends what it admits


def test_without_classes_jobs_get_kueues_default_priority(monkeypatch: pytest.MonkeyPatch) -> None:
    objects = render({"worker": {"kueueQueueName": "media"}})
    settings = operator_settings(objects, monkeypatch)
    job = worker_job(settings, sample_batch(), 0)
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "media"
    assert PRIORITY_LABEL not in job["metadata"]["labels"]


def test_only_kueue_mode_may_list_workloads() -> None:
    plain = _grants(role_rules("operator"))
    kueue_rules = find(render(KUEUE), "Role", "audio-extract-operator")["rules"]
    assert _grants(kueue_rules) == plain | {("kueue.x-k8s.io", "workloads", "list")}
    assert ("kueue.x-k8s.io", "workloads", "list") not in plain


def test_make_dev_with_kueue_installs_a_kueue_mode_release(monkeypatch: pytest.MonkeyPatch) -> None:
    from audio_extract_localcluster import kueue
    from audio_extract_localcluster.release import DevSecrets, dev_values

    keys = DevSecrets(api_key="axk_a", webhook_secret="whsec_" + "A" * 44, other_api_key="axk_b")
    objects = render(dev_values("dev-x", keys, node_port=None, kueue_queue=kueue.QUEUE_NAME))
    settings = operator_settings(objects, monkeypatch)
    assert settings.admission.kueue_queue == kueue.QUEUE_NAME
    made = {o["metadata"]["name"] for o in objects if o["kind"] == "WorkloadPriorityClass"}
    assert made == set(settings.admission.kueue_priority_classes.values())
    assert len(made) == 3
    plain = render(dev_values("dev-x", keys, node_port=None))
    assert not operator_settings(plain, monkeypatch).admission.kueue_queue
