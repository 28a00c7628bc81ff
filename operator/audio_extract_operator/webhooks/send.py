"""One delivery attempt: a signed POST through the address guard, bounded in time and in bytes read.

The client never follows redirects (a 3xx is reported as it is) and connects only to an address
:mod:`audio_extract_common.netguard` checked, pinned for the connection. The whole attempt,
connect to the last byte read, is bounded by ``config.timeout`` (httpx's own timeouts are per
operation, so a receiver trickling a byte a second would otherwise hold an attempt forever); a
status line that arrived before the deadline still counts. At most ``max_response_bytes`` of
the body are read, then the connection is closed.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from audio_extract_common.netguard import AllowList, BlockedAddress, NetguardError, guarded_async_client
from audio_extract_common.resource import Delivery

from .config import WebhookConfig
from .policy import Outcome
from .signing import Signer


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date. None when absent/invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class Sender:
    """Holds the process's one guarded client and signer; ``attempt`` makes one delivery attempt."""

    def __init__(self, config: WebhookConfig, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self.signer = Signer(config.secret)
        self.client = client or guarded_async_client(
            AllowList.parse(config.allow_cidrs),
            timeout=httpx.Timeout(config.timeout),
            headers={"user-agent": "audio-extract-webhooks/1"},
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def attempt(self, delivery: Delivery, body: bytes) -> Outcome:
        headers = self.signer.headers(delivery.id, body)  # fresh webhook-timestamp per attempt
        deadline = time.monotonic() + self.config.timeout
        try:
            async with asyncio.timeout(self.config.timeout):
                request = self.client.build_request("POST", delivery.url, content=body, headers=headers)
                response = await self.client.send(request, stream=True, follow_redirects=False)
        except BlockedAddress as e:
            return Outcome(error=str(e), blocked=True)
        except NetguardError as e:  # the name did not resolve: may come back, so retry
            return Outcome(error=str(e))
        except TimeoutError:
            return Outcome(error=f"timed out after {self.config.timeout:g}s")
        except httpx.HTTPError as e:
            return Outcome(error=f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
        try:
            read = await self._drain(response, deadline)
        finally:
            await response.aclose()
        return Outcome(
            status_code=response.status_code,
            retry_after=retry_after_seconds(response.headers.get("retry-after"))
            if response.status_code == 429 else None,
            read_bytes=read,
        )

    async def _drain(self, response: httpx.Response, deadline: float) -> int:
        """Read at most ``max_response_bytes`` before the deadline; the status is what matters."""
        limit = self.config.max_response_bytes
        read = 0
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read >= limit:
                        break
        except (TimeoutError, httpx.HTTPError):
            pass
        return read
