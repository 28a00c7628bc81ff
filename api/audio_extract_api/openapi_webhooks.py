"""The webhook events (docs/contract.md §5), as the OpenAPI document's `webhooks` section describes them.

The operator sends them (``audio_extract_operator.webhooks.events`` builds the bodies); the
models (in ``audio_extract_common.api_models``, where the Python client reads events with them)
document them, and a test validates the operator's real bodies against them. Job events reuse
the status view's shapes, so an event's `outputFile` and `error` read like the ones GET /v1/status
returns.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header

from audio_extract_common.api_models import BatchCompletedEvent, JobCompletedEvent, JobFailedEvent

# Standard Webhooks 1.0 (https://www.standardwebhooks.com/): what a receiver verifies.
WebhookId = Annotated[
    str,
    Header(
        alias="webhook-id",
        description="The event's id: the same on every retry of one event (deduplicate on it).",
    ),
]
WebhookTimestamp = Annotated[
    str,
    Header(
        alias="webhook-timestamp",
        pattern=r"^[0-9]+$",
        description="Unix time in seconds of this attempt; refuse one too far from your clock.",
    ),
]
WebhookSignature = Annotated[
    str,
    Header(
        alias="webhook-signature",
        description='Space-separated signatures `v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.'
        '{body}">`, keyed with the secret configured for the service.',
    ),
]

RESPONSES: dict[int | str, dict[str, str]] = {
    "2XX": {"description": "Delivered: any 2xx is success."},
    410: {"description": "Gone: the service stops retrying this event."},
    429: {"description": "Too many requests: the next attempt honours `Retry-After`."},
    "default": {
        "description": "Anything else (3xx included: redirects are never followed), or no "
        "answer within 15 s: retried on a backoff schedule spanning about a day."
    },
}

# Operation ids are the handlers' names, as the app's (``openapi.operation_id``).
router = APIRouter(generate_unique_id_function=lambda route: route.name)


@router.post("job.completed", responses=RESPONSES, summary="A job completed")
async def job_completed(
    body: JobCompletedEvent,
    webhook_id: WebhookId,
    webhook_timestamp: WebhookTimestamp,
    webhook_signature: WebhookSignature,
) -> None:
    """Sent to the job's `options.webhook`, else the batch's `webhook`."""


@router.post("job.failed", responses=RESPONSES, summary="A job failed or was cancelled")
async def job_failed(
    body: JobFailedEvent,
    webhook_id: WebhookId,
    webhook_timestamp: WebhookTimestamp,
    webhook_signature: WebhookSignature,
) -> None:
    """Sent to the job's `options.webhook`, else the batch's `webhook`."""


@router.post("batch.completed", responses=RESPONSES, summary="(extension) Every job of a batch is terminal")
async def batch_completed(
    body: BatchCompletedEvent,
    webhook_id: WebhookId,
    webhook_timestamp: WebhookTimestamp,
    webhook_signature: WebhookSignature,
) -> None:
    """Sent once per batch, to the batch-level `webhook` only."""
