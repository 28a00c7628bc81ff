"""Verifying the service's webhooks (Standard Webhooks 1.0, the reference ``standardwebhooks`` package).

The service signs every delivery with the secret its operator configured (``whsec_…``): HMAC-SHA256
of ``{webhook-id}.{webhook-timestamp}.{body}``. A receiver checks the signature and the timestamp
(within 5 minutes) on the raw body, before parsing it, and deduplicates on ``webhook-id``, which
stays the same on every retry of one event.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import TypeAdapter
from standardwebhooks import Webhook, WebhookVerificationError

from audio_extract_common.api_models import WebhookEvent

__all__ = ["WebhookVerificationError", "verify_webhook"]

_EVENT: TypeAdapter[WebhookEvent] = TypeAdapter(WebhookEvent)


def verify_webhook(secret: str, body: bytes | str, headers: Mapping[str, str]) -> WebhookEvent:
    """The event of a delivery whose signature is good, read into its model
    (``JobCompletedEvent``, ``JobFailedEvent`` or ``BatchCompletedEvent``).

    ``body`` is the request's raw body, ``headers`` its headers (any case). Raises
    ``WebhookVerificationError`` for a missing, wrong or stale signature.
    """
    payload = Webhook(secret).verify(body, dict(headers.items()))
    return _EVENT.validate_python(payload)
