"""The local cluster's Kueue objects: configuration, RBAC from the module's own roles, queues."""

from __future__ import annotations

from pathlib import Path

import yaml

from audio_extract_localcluster import kueue


def test_config_listens_on_loopback_only_and_turns_fair_sharing_on(tmp_path: Path) -> None:
    config = kueue.config(8081, 9443, tmp_path)
    assert config["health"]["healthProbeBindAddress"] == "127.0.0.1:8081"
    assert config["webhook"] == {"host": "127.0.0.1", "port": 9443, "certDir": str(tmp_path)}
    assert config["metrics"]["bindAddress"] == "0"
    assert config["leaderElection"]["leaderElect"] is False
    assert config["internalCertManagement"]["enable"] is False
    assert config["integrations"]["frameworks"] == ["batch/job"]
    assert config["manageJobsWithoutQueueName"] is False  # the cluster's other Jobs are not Kueue's
    assert config["fairSharing"]["preemptionStrategies"]


def _module_roles(bin_dir: Path) -> None:
    rbac = bin_dir / "kueue-config" / "rbac"
    rbac.mkdir(parents=True)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "manager-role"},
        "rules": [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "update"]}],
    }
    (rbac / "role.yaml").write_text("---\n" + yaml.safe_dump(role))
    secrets = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "manager-secrets-role", "namespace": "system"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
    }
    (rbac / "manager_secrets_role.yaml").write_text("# comment\n" + yaml.safe_dump(secrets))


def test_rbac_binds_the_module_roles_to_kueues_user_only(tmp_path: Path) -> None:
    _module_roles(tmp_path)
    objects = {(o["kind"], o["metadata"]["name"]): o for o in kueue.rbac(tmp_path)}
    role = objects[("ClusterRole", kueue.ROLE)]
    assert role["rules"] == [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "update"]}]
    secrets = objects[("Role", kueue.ROLE)]
    assert secrets["metadata"]["namespace"] == kueue.NAMESPACE  # not the module's placeholder
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        binding = objects[(kind, kueue.ROLE)]
        assert binding["subjects"] == [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": kueue.USER}
        ]
        assert binding["roleRef"]["name"] == kueue.ROLE
    assert ("Namespace", kueue.NAMESPACE) in objects


def test_cluster_queue_in_a_cohort_lends_and_borrows_within_its_limit() -> None:
    queue = kueue.cluster_queue("team-a", "1", cohort="media", borrowing_limit="500m", preempt=True)
    spec = queue["spec"]
    assert spec["cohortName"] == "media"
    cpu = spec["resourceGroups"][0]["flavors"][0]["resources"][0]
    assert cpu == {"name": "cpu", "nominalQuota": "1", "borrowingLimit": "500m"}
    assert spec["preemption"]["withinClusterQueue"] == "LowerPriority"
    alone = kueue.cluster_queue("solo", "2")["spec"]
    assert "cohortName" not in alone and "preemption" not in alone
    assert "borrowingLimit" not in alone["resourceGroups"][0]["flavors"][0]["resources"][0]


def test_dev_queues_point_the_local_queue_at_the_cluster_queue() -> None:
    flavor, cluster_queue, local_queue = kueue.dev_queues("audio-extract", cpu="2")
    assert flavor["kind"] == "ResourceFlavor"
    assert cluster_queue["spec"]["resourceGroups"][0]["flavors"][0]["name"] == flavor["metadata"]["name"]
    assert local_queue["metadata"]["namespace"] == "audio-extract"
    assert local_queue["spec"]["clusterQueue"] == cluster_queue["metadata"]["name"]


def test_priority_classes_order_high_over_normal_over_low() -> None:
    classes = kueue.priority_classes("team")
    assert classes["high"]["value"] > classes["normal"]["value"] > classes["low"]["value"]
    assert classes["low"]["metadata"]["name"] == "team-low"
