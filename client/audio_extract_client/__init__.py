"""A Python client of the audio-extract API (sync ``Client``, async ``AsyncClient``).

Requests and answers use the models the API itself is defined with (``audio_extract_common``), the
API's error codes are raised as typed exceptions (``errors``), 429/503 are retried after their
``Retry-After``, every submission carries one ``Idempotency-Key`` across its retries, and
``verify_webhook`` checks the service's signed webhooks. Nothing of the server (FastAPI, kopf, a
Kubernetes client) is imported. Example: ``docs/client.md``.
"""

from audio_extract_common.api_errors import ApiErrorCode
from audio_extract_common.api_models import (
    BatchAccepted,
    BatchCompletedEvent,
    BatchView,
    ExtractAccepted,
    JobCompletedEvent,
    JobErrorCode,
    JobFailedEvent,
    JobView,
    UploadResult,
)
from audio_extract_common.batch_spec import ExtractionJob, Options, Output, Source

from .aio import AsyncClient
from .client import Client
from .errors import ApiError, JobFailed, TransportError
from .retry import RetryPolicy, new_idempotency_key
from .webhooks import WebhookVerificationError, verify_webhook

__all__ = [
    "ApiError",
    "ApiErrorCode",
    "AsyncClient",
    "BatchAccepted",
    "BatchCompletedEvent",
    "BatchView",
    "Client",
    "ExtractAccepted",
    "ExtractionJob",
    "JobCompletedEvent",
    "JobErrorCode",
    "JobFailed",
    "JobFailedEvent",
    "JobView",
    "Options",
    "Output",
    "RetryPolicy",
    "Source",
    "TransportError",
    "UploadResult",
    "WebhookVerificationError",
    "new_idempotency_key",
    "verify_webhook",
]
