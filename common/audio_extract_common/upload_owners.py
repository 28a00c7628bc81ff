"""What an upload's owner marker (``upload-owners/<tenant>/<uploadId>``, ``store.upload_owner_key``)
holds. The API writes it and the operator reads it, so its format lives here.

A streamed upload's marker is empty: it is written once the upload is in place. A direct upload's
is written before its presigned URL is handed out and holds what was declared, as JSON
``{"size": N, "urlExpiresAt": "<RFC 3339>"}``: its bytes reach the store without the API, so the
marker is all there is until they arrive.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from . import timefmt


@dataclass(frozen=True)
class Declared:
    """What a direct upload declared: its size, and until when its URL takes the bytes."""

    size: int
    url_expires_at: datetime

    def encode(self) -> bytes:
        return json.dumps({"size": self.size, "urlExpiresAt": timefmt.iso(self.url_expires_at)}).encode()

    @classmethod
    def decode(cls, data: bytes) -> Declared | None:
        """None for a streamed upload's (empty) marker, or one this code cannot read."""
        try:
            fields = json.loads(data)
            return cls(int(fields["size"]), timefmt.parse(fields["urlExpiresAt"]))
        except (ValueError, TypeError, KeyError):
            return None

    def arriving(self, now: datetime) -> bool:
        """Its bytes may still come (an upload begun before the URL expired may end a little later:
        its bytes then count as stored)."""
        return now < self.url_expires_at
