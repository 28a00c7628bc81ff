"""The local cluster's KWOK objects: configuration, RBAC from the module's own role, simulated nodes
and the stage that ends a Job's pod."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from audio_extract_localcluster import kwok


def test_config_manages_exactly_the_nodes_it_is_given() -> None:
    options = kwok.config(10247)["options"]
    key, value = options["manageNodesWithAnnotationSelector"].split("=")
    made = kwok.nodes(3)
    assert all(n["metadata"]["annotations"][key] == value for n in made)
    assert len({n["metadata"]["name"] for n in made}) == 3
    assert options["serverAddress"] == "127.0.0.1:10247"  # its health check, on loopback only
    assert options["enableCRDs"] == []  # the stages come with the configuration
    assert options["nodeLeaseDurationSeconds"] > 0  # or the node lifecycle controller marks them lost


def test_nodes_report_the_capacity_asked_for() -> None:
    (made,) = kwok.nodes(1, cpu="8", memory="16Gi", pods="50")
    assert made["status"]["capacity"] == made["status"]["allocatable"]
    assert made["status"]["capacity"] == {
        "cpu": "8",
        "memory": "16Gi",
        "ephemeral-storage": "1Ti",
        "pods": "50",
    }
    assert made["metadata"]["labels"][kwok.LABEL[0]] == kwok.LABEL[1]  # what the benchmark selects by


def test_rbac_binds_the_module_role_to_kwoks_user_only(tmp_path: Path) -> None:
    (tmp_path / "kwok-config").mkdir()
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "kwok-controller"},
        "rules": [{"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch"]}],
    }
    (tmp_path / "kwok-config" / "role.yaml").write_text("---\n" + yaml.safe_dump(role))
    objects = {(o["kind"], o["metadata"]["name"]): o for o in kwok.rbac(tmp_path)}
    assert objects[("ClusterRole", kwok.ROLE)]["rules"] == role["rules"]
    binding = objects[("ClusterRoleBinding", kwok.ROLE)]
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": kwok.USER}
    ]
    assert binding["roleRef"]["name"] == kwok.ROLE


@pytest.mark.parametrize(("exit_code", "phase"), [(0, "Succeeded"), (65, "Failed")])
def test_job_pod_done_ends_running_job_pods_after_their_time(exit_code: int, phase: str) -> None:
    stage = kwok.job_pod_done("done", seconds=2.5, jitter=1, exit_code=exit_code, message='"ok"')
    spec = stage["spec"]
    assert spec["delay"] == {"durationMilliseconds": 2500, "jitterDurationMilliseconds": 3500}
    selects = {e["key"]: (e["operator"], e.get("values")) for e in spec["selector"]["matchExpressions"]}
    assert selects[".status.phase"] == ("In", ["Running"])
    assert selects[".metadata.deletionTimestamp"] == ("DoesNotExist", None)  # deletion is pod-delete's
    assert selects[".metadata.ownerReferences.[].kind"] == ("In", ["Job"])
    template = spec["next"]["statusTemplate"]
    assert '{{ $message := "ok" }}' in template
    assert f"exitCode: {exit_code}\n" in template
    assert template.rstrip().endswith(f"phase: {phase}")
