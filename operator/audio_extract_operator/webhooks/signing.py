"""Standard Webhooks 1.0 signing (HMAC-SHA256 ``v1``) through the reference ``standardwebhooks`` package.

Signed content is ``{webhook-id}.{webhook-timestamp}.{body}``; the timestamp is that of the
attempt (receivers reject ones more than 5 minutes off), the id that of the event.
"""

from __future__ import annotations

from datetime import UTC, datetime

from standardwebhooks import Webhook


class Signer:
    def __init__(self, secret: str) -> None:
        # Webhook() accepts "whsec_<base64>" and raises on an empty secret.
        self._webhook = Webhook(secret)

    def headers(self, webhook_id: str, body: bytes, at: datetime | None = None) -> dict[str, str]:
        """The three Standard Webhooks headers plus the content type, for one attempt."""
        at = (at or datetime.now(UTC)).astimezone(UTC)
        signature = self._webhook.sign(webhook_id, at, body.decode())
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature,
            "content-type": "application/json",
        }
