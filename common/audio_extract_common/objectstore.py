"""The S3-compatible store: outputs and uploads as objects in one bucket, under a key prefix, on
any service that speaks the S3 API (AWS S3, Google Cloud Storage's interoperability mode, Ceph
RGW, MinIO, SeaweedFS).

Built on aiobotocore: async with streamed bodies, botocore's standard credential chain (the
environment, shared config, web identity as with EKS's IRSA, container and instance metadata)
when the settings name no keys, a custom CA, path or virtual-host addressing, local presigning.

Writes are atomic: an object appears only whole, from one PutObject or from a multipart upload
completed after its last part; a failed or cancelled write aborts its multipart upload. A process
killed mid-write leaves an incomplete multipart upload, invisible to readers and removed by
:meth:`S3Store.abort_stale_uploads` (or a bucket's AbortIncompleteMultipartUpload lifecycle rule).

Keys are relative to the prefix, ``/``-separated, without empty, ``.`` or ``..`` segments (some
stores, SeaweedFS among them, map keys onto paths). Library errors leave as :class:`StoreError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import anyio
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from audio_extract_common.filenames import content_disposition

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

PART_SIZE = 8 << 20  # bytes per multipart part: ≥ 5 MiB (S3's minimum), 10,000 parts ≈ 78 GiB
READ_CHUNK = 1 << 20  # bytes per chunk a read yields (the API sends each as one body part)
DELETE_BATCH = 1000  # keys per DeleteObjects request, S3's maximum
COPY_LIMIT = 5 << 30  # bytes: the largest object one CopyObject copies
ABORT_TIMEOUT = 30.0  # seconds an abort may take after a failure, even when cancelled
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}
_DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"}


class S3Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint_url: str | None = Field(
        None, description="The store's URL, e.g. https://minio.storage:9000; None: AWS S3 of the region."
    )
    region: str = Field("us-east-1", description="The region requests are signed for.")
    bucket: str = Field(min_length=1, description="The bucket holding outputs and uploads.")
    prefix: str = Field("", description="Key prefix inside the bucket ('' = its root), e.g. 'audio-extract'.")
    addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto",
        description="'path' (endpoint/bucket/key, what most self-hosted stores need), 'virtual' "
        "(bucket.endpoint/key) or 'auto' (botocore's choice: path with endpoint_url, virtual on AWS).",
    )
    ca_bundle: Path | None = Field(None, description="PEM file of the CAs to trust; None: the system's.")
    access_key_id: SecretStr | None = Field(
        None, description="Access key id; with the secret both None: the standard credential chain."
    )
    secret_access_key: SecretStr | None = Field(None, description="Secret access key, with access_key_id.")
    presign_endpoint_url: str | None = Field(
        None,
        description="The endpoint presigned URLs name, when their users (clients, worker pods) reach "
        "the store by another address than this process; None: endpoint_url.",
    )

    @model_validator(mode="after")
    def _keys_in_pairs(self) -> S3Settings:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("set both access_key_id and secret_access_key, or neither")
        return self


class StoreError(Exception):
    """The store refused or failed a request."""


class ObjectNotFound(StoreError):
    pass


class AccessDenied(StoreError):
    """Missing, wrong or expired credentials, or a policy that denies the request."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str  # relative to the store's prefix
    size: int
    last_modified: datetime


@dataclass(frozen=True)
class PresignedPut:
    url: str
    expires_at: datetime
    headers: dict[str, str] = field(default_factory=dict)  # the client must send exactly these
    method: str = "PUT"


@contextlib.contextmanager
def _translated(key: str) -> Iterator[None]:
    try:
        yield
    except ClientError as e:
        error: Any = e.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in _NOT_FOUND:
            raise ObjectNotFound(key) from e
        kind = AccessDenied if code in _DENIED else StoreError
        raise kind(f"{code or 'error'} for {key!r}: {error.get('Message', e)}") from e
    except BotoCoreError as e:
        raise StoreError(f"{key!r}: {e}") from e


async def _parts(chunks: AsyncIterable[bytes]) -> AsyncGenerator[bytes, None]:
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        while len(buffer) >= PART_SIZE:
            yield bytes(buffer[:PART_SIZE])
            del buffer[:PART_SIZE]
    if buffer:
        yield bytes(buffer)


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as f:
        while chunk := await f.read(PART_SIZE):
            yield chunk


class S3Store:
    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self._prefix = settings.prefix.strip("/")
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> S3Store:
        s = self.settings
        # SigV4 everywhere (botocore would presign with the deprecated SigV2 for a custom endpoint);
        # checksums only where S3 requires them: the CRC headers botocore sends by default since
        # 1.36 are refused by several S3-compatible stores (GCS's interoperability mode among them).
        config = AioConfig(
            signature_version="s3v4",
            s3={"addressing_style": s.addressing_style},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        keys: dict[str, Any] = {}
        if s.access_key_id is not None and s.secret_access_key is not None:
            keys = {
                "aws_access_key_id": s.access_key_id.get_secret_value(),
                "aws_secret_access_key": s.secret_access_key.get_secret_value(),
            }
        verify = str(s.ca_bundle) if s.ca_bundle else None
        session = get_session()

        async def client(endpoint: str | None) -> S3Client:
            creating = session.create_client(
                "s3", region_name=s.region, endpoint_url=endpoint, verify=verify, config=config, **keys
            )
            return await self._stack.enter_async_context(creating)

        try:
            self._client = await client(s.endpoint_url)
            other = s.presign_endpoint_url not in (None, s.endpoint_url)
            self._signer = await client(s.presign_endpoint_url) if other else self._client
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.aclose()

    def _key(self, key: str, *, prefix: bool = False) -> str:
        """The bucket's key for ``key``, or with ``prefix`` for a listing prefix ('' or ending in '/')."""
        check = key[:-1] if prefix and key.endswith("/") else key
        if (check or not prefix) and any(s in ("", ".", "..") for s in check.split("/")):
            raise ValueError(f"not a store key: {key!r}")
        return f"{self._prefix}/{key}" if self._prefix else key

    def _relative(self, full: str) -> str:
        return full[len(self._prefix) + 1 :] if self._prefix else full

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str | None = None
    ) -> int:
        """Store what ``chunks`` yields under ``key``, atomically; returns the size in bytes."""
        full = self._key(key)
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        async with contextlib.aclosing(_parts(chunks)) as parts:
            first = await anext(parts, b"")
            second = await anext(parts, None)
            with _translated(key):
                if second is None:
                    await self._client.put_object(Bucket=self.bucket, Key=full, Body=first, **extra)
                    return len(first)
                created = await self._client.create_multipart_upload(Bucket=self.bucket, Key=full, **extra)
            upload_id, done = created["UploadId"], list[Any]()
            try:
                with _translated(key):
                    size = 0
                    for body in (first, second):
                        done.append(await self._upload_part(full, upload_id, len(done) + 1, body))
                        size += len(body)
                    async for body in parts:
                        done.append(await self._upload_part(full, upload_id, len(done) + 1, body))
                        size += len(body)
                    await self._client.complete_multipart_upload(
                        Bucket=self.bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": done}
                    )
                return size
            except BaseException:
                # shielded: a cancelled writer must still take its parts back
                with anyio.move_on_after(ABORT_TIMEOUT, shield=True), contextlib.suppress(Exception):
                    await self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=full, UploadId=upload_id
                    )
                raise

    async def _upload_part(self, full: str, upload_id: str, number: int, body: bytes) -> Any:
        response = await self._client.upload_part(
            Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number, Body=body
        )
        return {"ETag": response["ETag"], "PartNumber": number}

    async def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> int:
        async def one() -> AsyncIterator[bytes]:
            yield data

        return await self.put_stream(key, one(), content_type=content_type)

    async def put_file(self, key: str, path: Path, content_type: str | None = None) -> int:
        return await self.put_stream(key, _file_chunks(path), content_type=content_type)

    async def size(self, key: str) -> int | None:
        try:
            with _translated(key):
                head = await self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ObjectNotFound:
            return None
        return head["ContentLength"]

    async def touch(self, key: str) -> int | None:
        """Mark ``key`` as used now (its LastModified, which expiry counts from, as a file's mtime);
        its size, or None if absent. A copy onto itself, inside the store: no bytes pass through
        here (up to 5 GiB, CopyObject's limit; a larger object keeps its time)."""
        full = self._key(key)
        try:
            with _translated(key):
                head = await self._client.head_object(Bucket=self.bucket, Key=full)
                kept: dict[str, Any] = {"ContentType": head["ContentType"]} if "ContentType" in head else {}
                if head["ContentLength"] <= COPY_LIMIT:
                    await self._client.copy_object(
                        Bucket=self.bucket,
                        Key=full,
                        CopySource={"Bucket": self.bucket, "Key": full},
                        MetadataDirective="REPLACE",  # S3 refuses a copy onto itself that changes nothing
                        Metadata=head.get("Metadata", {}),
                        **kept,
                    )
        except ObjectNotFound:
            return None
        return head["ContentLength"]

    async def stream(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The object's bytes ``start``..``end`` (inclusive, as in HTTP Range; None: to the end), in
        chunks of up to 64 KiB. The request goes out at the first iteration (ObjectNotFound then)."""
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"not a byte range: {start}-{end}")
        ranged: dict[str, Any] = (
            {"Range": f"bytes={start}-{'' if end is None else end}"} if start or end is not None else {}
        )
        with _translated(key):
            response = await self._client.get_object(Bucket=self.bucket, Key=self._key(key), **ranged)
            async with response["Body"] as body:
                async for chunk in body.iter_chunks(READ_CHUNK):
                    yield chunk

    async def delete(self, key: str) -> None:
        with _translated(key):
            await self._client.delete_object(Bucket=self.bucket, Key=self._key(key))

    async def delete_prefix(self, prefix: str) -> int:
        """Delete the object ``prefix`` and every object under ``prefix/``, as the filesystem store
        deletes a file or a directory (``job_1`` never touches ``job_10/...``); returns how many."""
        keys = [info.key async for info in self.list(prefix.rstrip("/") + "/" if prefix else "")]
        if prefix and not prefix.endswith("/") and await self.size(prefix) is not None:
            keys.append(prefix)
        for i in range(0, len(keys), DELETE_BATCH):
            batch: Any = [{"Key": self._key(k)} for k in keys[i : i + DELETE_BATCH]]
            with _translated(prefix):
                response = await self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            if errors := response.get("Errors"):
                raise StoreError(f"{len(errors)} deletions under {prefix!r} failed, e.g. {errors[0]}")
        return len(keys)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Objects whose key starts with ``prefix`` (a plain string prefix), in key order."""
        with _translated(prefix):
            async for page in self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix, prefix=True)
            ):
                for obj in page.get("Contents", []):
                    modified = obj["LastModified"].astimezone(UTC)  # botocore's is in local time
                    yield ObjectInfo(self._relative(obj["Key"]), obj["Size"], modified)

    async def free_bytes(self) -> int | None:
        return None  # a bucket has no size to fill

    def local_path(self, key: str) -> Path | None:
        return None  # nothing to send from a local file: callers stream or presign

    async def presign_get(
        self, key: str, expires_in: int, *, filename: str | None = None, content_type: str | None = None
    ) -> str:
        """A URL that GETs the object without credentials for ``expires_in`` seconds; with
        ``filename`` the response names it as an attachment."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        if content_type:
            params["ResponseContentType"] = content_type
        with _translated(key):
            return await self._signer.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires_in
            )

    async def presign_put(
        self, key: str, expires_in: int, *, content_type: str | None = None, content_length: int | None = None
    ) -> PresignedPut:
        """A single PUT (up to 5 GiB, S3's limit) that stores the object without credentials; with
        ``content_length`` the store refuses a body of any other length."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        headers = {}
        if content_type:  # signed: the PUT must carry exactly this type
            params["ContentType"] = headers["Content-Type"] = content_type
        if content_length is not None:  # signed too: the holder of the URL cannot store more
            params["ContentLength"] = content_length
            headers["Content-Length"] = str(content_length)
        expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
        with _translated(key):
            url = await self._signer.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_in)
        return PresignedPut(url=url, expires_at=expires_at, headers=headers)

    async def abort_stale_uploads(self, older_than: timedelta) -> int:
        """Abort the incomplete multipart uploads under the prefix started more than
        ``older_than`` ago (writers killed mid-write); returns how many."""
        cutoff, aborted = datetime.now(UTC) - older_than, 0
        with _translated("uploads"):
            async for page in self._client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self._key("", prefix=True)
            ):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] <= cutoff:
                        with contextlib.suppress(ObjectNotFound), _translated(upload["Key"]):
                            await self._client.abort_multipart_upload(
                                Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                            )
                            aborted += 1
        return aborted
