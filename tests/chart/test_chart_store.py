"""The chart with `store.type: s3`: no shared volume anywhere, the bucket's settings and credentials
reach the API and the operator only, a private CA is mounted, and every NetworkPolicy opens the
store's address on its port and nothing more."""

from __future__ import annotations

from typing import Any

import pytest

from support.chart import assert_settings_exist, env_of, find, render, template

pytestmark = pytest.mark.chart

S3 = {
    "store": {
        "type": "s3",
        "s3": {
            "endpoint": "https://minio.storage.svc:9000",
            "presignEndpoint": "https://media-store.example.com",
            "bucket": "media",
            "prefix": "audio-extract",
            "addressingStyle": "path",
            "existingSecret": "store-keys",
            "caConfigMap": "store-ca",
            "networkPolicyPeers": [{"ipBlock": {"cidr": "10.96.0.20/32"}}],
            "port": 9000,
        },
    },
    "api": {"serviceAccountAnnotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/api"}},
}
STORE_RULE = {"to": [{"ipBlock": {"cidr": "10.96.0.20/32"}}], "ports": [{"protocol": "TCP", "port": 9000}]}
Objects = list[dict[str, Any]]


@pytest.fixture(scope="module")
def s3() -> Objects:
    return render(S3)


def _pod(objects: Objects, name: str) -> dict[str, Any]:
    return find(objects, "Deployment", name)["spec"]["template"]["spec"]


def test_no_claim_and_no_store_volume(s3: Objects) -> None:
    assert not [o for o in s3 if o["kind"] == "PersistentVolumeClaim"]
    for name in ("audio-extract-api", "audio-extract-operator"):
        pod = _pod(s3, name)
        assert "store" not in {v["name"] for v in pod["volumes"]}
        assert {"name": "store-ca", "configMap": {"name": "store-ca"}} in pod["volumes"]
        mounts = pod["containers"][0]["volumeMounts"]
        assert {"name": "store-ca", "mountPath": "/etc/audio-extract/store-ca", "readOnly": True} in mounts


@pytest.mark.parametrize(
    ("name", "type_var", "s3_prefix"),
    [
        ("audio-extract-api", "AUDIO_EXTRACT_API_STORE_TYPE", "AUDIO_EXTRACT_API_S3__"),
        # the operator's store settings are a group: STORE__TYPE, STORE__S3__BUCKET
        (
            "audio-extract-operator",
            "AUDIO_EXTRACT_OPERATOR_STORE__TYPE",
            "AUDIO_EXTRACT_OPERATOR_STORE__S3__",
        ),
    ],
)
def test_bucket_settings_and_credentials_reach_the_api_and_the_operator(
    s3: Objects, name: str, type_var: str, s3_prefix: str
) -> None:
    env = env_of(find(s3, "Deployment", name))
    store = {"S3__" + k.removeprefix(s3_prefix): v for k, v in env.items() if k.startswith(s3_prefix)}
    assert {"STORE_TYPE": env[type_var], **store} == {
        "STORE_TYPE": "s3",
        "S3__BUCKET": "media",
        "S3__REGION": "us-east-1",
        "S3__PREFIX": "audio-extract",
        "S3__ADDRESSING_STYLE": "path",
        "S3__ENDPOINT_URL": "https://minio.storage.svc:9000",
        "S3__PRESIGN_ENDPOINT_URL": "https://media-store.example.com",
        "S3__CA_BUNDLE": "/etc/audio-extract/store-ca/ca.crt",
    }
    assert env["AWS_ACCESS_KEY_ID"] == ("secret", "store-keys", "AWS_ACCESS_KEY_ID")
    assert env["AWS_SECRET_ACCESS_KEY"] == ("secret", "store-keys", "AWS_SECRET_ACCESS_KEY")
    assert not [
        k for k in env if k.endswith(("STORE_ROOT", "STORE__ROOT", "STORE__CLAIM", "STORE__MOUNT_PATH"))
    ]


def test_every_store_variable_names_a_setting(s3: Objects) -> None:
    assert_settings_exist(s3)


def test_the_cloud_identity_goes_on_the_api_service_account_only(s3: Objects) -> None:
    annotations = find(s3, "ServiceAccount", "audio-extract-api")["metadata"]["annotations"]
    assert annotations == {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/api"}
    assert "annotations" not in find(s3, "ServiceAccount", "audio-extract-worker")["metadata"]


def test_network_policies_open_the_store_on_its_port(s3: Objects) -> None:
    for name in ("audio-extract-api", "audio-extract-operator", "audio-extract-worker"):
        egress = find(s3, "NetworkPolicy", name)["spec"]["egress"]
        assert STORE_RULE in egress, name
    default = render()
    for name in ("audio-extract-api", "audio-extract-operator", "audio-extract-worker"):
        ports = [r.get("ports") for r in find(default, "NetworkPolicy", name)["spec"]["egress"]]
        assert [{"protocol": "TCP", "port": 9000}] not in ports


def test_without_peers_the_store_is_a_public_address_on_its_port() -> None:
    objects = render({"store": {"type": "s3", "s3": {"bucket": "media"}}}, required=False)
    [rule] = [
        r
        for r in find(objects, "NetworkPolicy", "audio-extract-api")["spec"]["egress"]
        if r.get("ports") == [{"protocol": "TCP", "port": 443}] and r.get("to")
    ]
    assert rule["to"][0]["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert "10.0.0.0/8" in rule["to"][0]["ipBlock"]["except"]
    env = env_of(find(objects, "Deployment", "audio-extract-api"))
    assert "AWS_ACCESS_KEY_ID" not in env  # no Secret: the standard credential chain
    assert "AUDIO_EXTRACT_API_S3__ENDPOINT_URL" not in env  # AWS S3 of the region


def test_s3_without_a_bucket_is_refused() -> None:
    result = template({}, check=False, required=False)
    assert result.returncode != 0
    assert "store.s3.bucket is required" in result.stderr


@pytest.mark.parametrize(
    "values",
    [{"store": {"type": "nfs"}}, {"store": {"type": "s3", "s3": {"bucket": "b", "addressingStyle": "dns"}}}],
)
def test_schema_refuses_bad_store_values(values: dict[str, Any]) -> None:
    assert template(values, check=False).returncode != 0


def test_worker_jobs_get_urls_and_no_store(s3: Objects, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator as the s3 render configures it builds Jobs with no store volume and no
    credential: only the presigned URLs of the job's own objects."""
    from datetime import UTC, datetime

    from audio_extract_operator.jobs import WorkerUrls, build_job
    from support.chart import operator_settings, sample_batch

    settings = operator_settings(s3, monkeypatch)
    assert settings.store.type == "s3"
    assert settings.store.s3 is not None and settings.store.s3.bucket == "media"
    urls = WorkerUrls("https://media-store.example.com/put", "job_x/audio.mp3", datetime.now(UTC))
    spec = build_job(sample_batch(), 0, settings, urls)["spec"]["template"]["spec"]
    assert [v["name"] for v in spec["volumes"]] == ["scratch"]
    container = spec["containers"][0]
    assert [m["name"] for m in container["volumeMounts"]] == ["scratch"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AUDIO_EXTRACT_WORKER_OUTPUT_URL"] == "https://media-store.example.com/put"
    assert not [name for name in env if name.startswith("AWS_") or "STORE_ROOT" in name]
