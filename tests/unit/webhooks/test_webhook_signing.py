"""Standard Webhooks signatures: the spec's test vector and a round trip through verify()."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from audio_extract_operator.webhooks.signing import Signer


def test_standard_webhooks_test_vector_reproduces():
    signer = Signer("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    headers = signer.headers(
        "msg_p5jXN8AQM9LWM0D4loKWxJek", b'{"test": 2432232314}', datetime.fromtimestamp(1614265330, UTC)
    )
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "content-type": "application/json",
    }


def test_fresh_signature_verifies_and_tampering_fails():
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    body = b'{"event":"job.completed","jobId":"job_0123456789abcd01"}'
    headers = Signer(secret).headers("msg_abc", body)
    assert Webhook(secret).verify(body, headers)["event"] == "job.completed"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"completed", b"failed"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "msg_other"})
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(os.urandom(32)).decode()).verify(body, headers)


def test_empty_secret_is_refused():
    with pytest.raises(Exception, match="may not be empty"):
        Signer("whsec_")
