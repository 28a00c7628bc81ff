"""The local cluster's S3 store: a real S3 server with the bucket created, signed requests checked,
reachable from this machine with the key in `cluster.s3` and from a pod with no credential at all
through a presigned URL (how workers reach their objects)."""

from __future__ import annotations

import dataclasses

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.cluster


def _client(s3, secret: str | None = None):  # type: ignore[no-untyped-def]
    return dataclasses.replace(s3, secret_access_key=secret or s3.secret_access_key).client()


def test_the_bucket_takes_signed_writes_and_refuses_a_wrong_key(cluster):
    client = _client(cluster.s3)
    client.put_object(Bucket=cluster.s3.bucket, Key="probe/hello.txt", Body=b"hello from the host")
    got = client.get_object(Bucket=cluster.s3.bucket, Key="probe/hello.txt", Range="bytes=6-9")
    assert got["Body"].read() == b"from"

    with pytest.raises(ClientError) as refused:
        _client(cluster.s3, secret="not-the-secret").get_object(
            Bucket=cluster.s3.bucket, Key="probe/hello.txt"
        )
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_a_pod_reads_an_object_through_a_presigned_url_and_nothing_else(namespace, cluster):
    client = _client(cluster.s3)
    client.put_object(Bucket=cluster.s3.bucket, Key="probe/for-a-pod.txt", Body=b"presigned bytes")
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": cluster.s3.bucket, "Key": "probe/for-a-pod.txt"}, ExpiresIn=300
    )
    unsigned = f"{cluster.s3.endpoint_url}/{cluster.s3.bucket}/probe/for-a-pod.txt"
    script = f"wget -q -O - '{url}'; echo; wget -q -O - '{unsigned}' 2>/dev/null || echo refused"
    cluster.kubectl(
        "-n", namespace, "run", "reader", "--image=busybox", "--restart=Never", "--", "sh", "-c", script
    )
    cluster.kubectl(
        "-n",
        namespace,
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/reader",
        "--timeout=60s",
    )
    assert cluster.kubectl("-n", namespace, "logs", "reader").stdout.splitlines() == [
        "presigned bytes",
        "refused",
    ]
