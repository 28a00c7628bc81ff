"""Per-job progress tokens: ``hmac_sha256(secret, jobId)``, so a pod can report only for its own job."""

from __future__ import annotations

import hashlib
import hmac


def progress_token(secret: str, job_id: str) -> str:
    return hmac.new(secret.encode(), job_id.encode(), hashlib.sha256).hexdigest()


def token_matches(secret: str, job_id: str, presented: str) -> bool:
    """Constant-time check of a bearer token; an empty secret accepts nothing."""
    if not secret or not presented:
        return False
    return hmac.compare_digest(progress_token(secret, job_id), presented)
