"""The S3 store over HTTPS with a private CA (``S3Settings.ca_bundle``): a SeaweedFS S3 gateway
serving only HTTPS, with a certificate for IP 127.0.0.1 signed by a CA made here, started once
for this module. The store trusts exactly the CAs its settings name: that CA, or else the
system's, which refuse the certificate with a StoreError."""

from __future__ import annotations

import os
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from botocore.exceptions import SSLError

from audio_extract_common.objectstore import READ_CHUNK, S3Store, StoreError
from audio_extract_localcluster.certs import CertificateAuthority
from support.s3_server import S3Server, ServerTLS, seaweedfs

REFUSED_WITHIN = 30.0  # seconds: a refused certificate fails the request, it never hangs


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    directory = tmp_path_factory.mktemp("s3-tls")
    ca = CertificateAuthority("audio-extract-test-s3-ca")
    ca_file = directory / "ca.crt"
    ca_file.write_bytes(ca.cert_pem)
    cert, key = ca.issue("seaweedfs-s3", server_hosts=("127.0.0.1",)).write(directory, "s3")
    with seaweedfs(tls=ServerTLS(cert, key, ca_file)) as server:
        yield server


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _another_ca(directory: Path) -> Path:
    path = directory / "other-ca.crt"
    path.write_bytes(CertificateAuthority("not-the-s3-servers-ca").cert_pem)
    return path


async def test_with_the_ca_bundle_objects_round_trip_and_a_presigned_get_verifies(
    tls_server: S3Server, prefix: str
) -> None:
    assert tls_server.endpoint_url.startswith("https://127.0.0.1:")
    ca = tls_server.ca_bundle
    assert ca is not None
    data = os.urandom(2 * READ_CHUNK + 12345)  # more than one chunk of a read
    async with S3Store(tls_server.settings(prefix=prefix, ca_bundle=ca)) as store:
        assert await store.put_bytes("dir/clip.bin", data) == len(data)
        assert b"".join([chunk async for chunk in store.stream("dir/clip.bin")]) == data
        assert b"".join([chunk async for chunk in store.stream("dir/clip.bin", 5, 9)]) == data[5:10]
        url = await store.presign_get("dir/clip.bin", 60, filename="clip.bin")
    assert url.startswith(f"{tls_server.endpoint_url}/{tls_server.bucket}/{prefix}/dir/clip.bin?")

    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca)) as http:
        got = await http.get(url)
    assert got.status_code == 200, got.text
    assert got.content == data
    assert "clip.bin" in got.headers["content-disposition"]

    async with httpx.AsyncClient() as http:  # the system's CAs: the server is really on our CA
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await http.get(url)


def _assert_refused(refused: pytest.ExceptionInfo[StoreError]) -> None:
    assert type(refused.value) is StoreError  # neither ObjectNotFound nor AccessDenied
    assert "certificate verify failed" in str(refused.value)
    assert isinstance(refused.value.__cause__, SSLError)


async def _absent(server: S3Server, prefix: str, key: str) -> bool:
    async with S3Store(server.settings(prefix=prefix)) as trusting:
        return await trusting.size(key) is None


async def test_without_the_ca_bundle_the_systems_cas_refuse_the_certificate_with_a_store_error(
    tls_server: S3Server, prefix: str
) -> None:
    settings = tls_server.settings(prefix=prefix, ca_bundle=None)
    async with S3Store(settings) as store:
        started = time.monotonic()
        with anyio.fail_after(REFUSED_WITHIN), pytest.raises(StoreError) as written:
            await store.put_bytes("refused.bin", b"never stored")
        wrote_in = time.monotonic() - started
        with anyio.fail_after(REFUSED_WITHIN), pytest.raises(StoreError) as read:
            async for _ in store.stream("refused.bin"):
                pass
    _assert_refused(written)
    _assert_refused(read)
    assert await _absent(tls_server, prefix, "refused.bin")
    # botocore retries the handshake as a connection error (4 retries, random backoff) first
    print(f"refused in {wrote_in:.2f} s: {written.value}")


async def test_with_another_cas_bundle_the_certificate_is_refused_too(
    tls_server: S3Server, prefix: str, tmp_path: Path
) -> None:
    other = _another_ca(tmp_path)
    async with S3Store(tls_server.settings(prefix=prefix, ca_bundle=other)) as store:
        with anyio.fail_after(REFUSED_WITHIN), pytest.raises(StoreError) as written:
            await store.put_bytes("refused.bin", b"never stored")
    _assert_refused(written)
    assert await _absent(tls_server, prefix, "refused.bin")
