"""Direct uploads (docs/contract.md §7): the client declares a file and PUTs its bytes straight to the
object store with a presigned URL, so large files never pass through the API.

Only a store that presigns takes them (an object store); a volume answers 400 INVALID_REQUEST and
the streamed forms stay. The declared size is checked against the upload cap, the store's room
and the tenant's quota as a streamed upload's would be, and is reserved: the owner marker records
it (``upload_owners.Declared``), so it counts against the quota from the moment the URL is handed
out until its bytes arrive (then their stored size counts) or the URL expires. The PUT's
Content-Type and Content-Length are signed into the URL, so the store takes exactly the declared
size; a submission still refuses an upload holding more (a store that does not check the signed
length).
"""

from __future__ import annotations

from audio_extract_common import timefmt
from audio_extract_common.api_models import DirectUploadRequest, DirectUploadTicket
from audio_extract_common.storage import Storage
from audio_extract_common.store import upload_key
from audio_extract_common.upload_owners import Declared

from .auth import Principal
from .errors import InvalidRequest, PayloadTooLarge
from .storespace import StoreSpace
from .upload_quota import UploadQuota, record_owner
from .uploads import new_upload_id


async def offer_upload(
    store: Storage,
    space: StoreSpace,
    quota: UploadQuota,
    who: Principal,
    request: DirectUploadRequest,
    limit: int,
    url_seconds: int,
) -> DirectUploadTicket:
    """A presigned PUT for a new upload of ``who``'s tenant, its declared size reserved."""
    upload_id = new_upload_id()
    put = await store.presign_put(
        upload_key(upload_id), url_seconds, content_type=request.contentType, content_length=request.size
    )
    if put is None:
        raise InvalidRequest(
            "This service's store cannot take direct uploads: send the file's bytes to this route "
            "(a raw body or a multipart form with a 'file' part)"
        )
    if request.size > limit:
        raise PayloadTooLarge(f"Upload is over the limit of {limit} bytes")
    await space.check("upload", request.size)
    async with quota.reserve(who.tenant, request.size) as take:
        take(request.size)
        # Before the URL leaves: the bytes may arrive at once, and must find their owner recorded.
        await record_owner(store, who.tenant, upload_id, Declared(request.size, put.expires_at))
    return DirectUploadTicket(
        fileId=upload_id,
        uploadUrl=put.url,
        method="PUT",
        headers=put.headers,
        expiresAt=timefmt.iso(put.expires_at),
    )
