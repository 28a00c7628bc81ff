"""One delivery attempt: a signed POST through the address guard, bounded in time and in bytes read.

The session (:func:`audio_extract_common.aiohttp_guard.guarded_session`, aiohttp) never follows
redirects (a 3xx is reported as it is) and connects only to addresses the guard checked. Its
lookups run in a :class:`~audio_extract_common.resolver.BoundedResolver`: a target whose name
does not answer fails its attempt after ``config.resolve_timeout`` (retried on the schedule) and
holds one lookup thread however many deliveries wait for it, so other receivers are not held up. It keeps
connections alive per receiver: a burst of deliveries to one receiver reuses a few connections
instead of opening one per event. The whole attempt, connect to the last byte read, is bounded by
``config.timeout``; a status line that arrived before the deadline still counts. At most
``MAX_RESPONSE_BYTES`` of the body are read; a connection whose body was not read to its end is
closed, never reused.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from audio_extract_common.address_policy import AllowList, BlockedAddress, NetguardError
from audio_extract_common.aiohttp_guard import guarded_session
from audio_extract_common.batch_status import Delivery
from audio_extract_common.resolver import BoundedResolver
from audio_extract_common.retry_after import retry_after_seconds

from .config import WebhookSettings
from .policy import Outcome
from .signing import Signer

MAX_RESPONSE_BYTES = 64 * 1024
"""At most this much of an answer is read: its status is what counts."""


class Sender:
    """Holds the process's one guarded session and signer; ``attempt`` makes one delivery attempt."""

    def __init__(self, config: WebhookSettings) -> None:
        self.config = config
        self.signer = Signer(config.secret.get_secret_value())
        self.allow = AllowList.parse(config.allow_cidrs)
        self.resolver = BoundedResolver(threads=config.resolve_threads, timeout=config.resolve_timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # created in the running loop, on first use
            self._session = guarded_session(
                self.allow,
                limit=self.config.concurrency,
                lookup=self.resolver.lookup,
                headers={"user-agent": "audio-extract-webhooks/1"},
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def attempt(self, delivery: Delivery, body: bytes) -> Outcome:
        headers = self.signer.headers(delivery.id, body)  # fresh webhook-timestamp per attempt
        deadline = time.monotonic() + self.config.timeout
        try:
            async with asyncio.timeout(self.config.timeout):
                response = await self._client().post(
                    delivery.url, data=body, headers=headers, allow_redirects=False
                )
        except BlockedAddress as e:
            return Outcome(error=str(e), blocked=True)
        except NetguardError as e:  # the name did not resolve: may come back, so retry
            return Outcome(error=str(e))
        except TimeoutError:
            return Outcome(error=f"timed out after {self.config.timeout:g}s")
        except (aiohttp.ClientError, ValueError) as e:  # ValueError: a URL aiohttp cannot use
            return Outcome(error=f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
        read, complete = await self._drain(response, deadline)
        if complete:
            response.release()  # the connection goes back to the pool
        else:
            response.close()
        return Outcome(
            status_code=response.status,
            retry_after=retry_after_seconds(response.headers.get("retry-after"))
            if response.status == 429
            else None,
            read_bytes=read,
        )

    async def _drain(self, response: aiohttp.ClientResponse, deadline: float) -> tuple[int, bool]:
        """Read at most ``MAX_RESPONSE_BYTES`` before the deadline; the status is what matters.
        Returns the bytes read and whether the body was read to its end."""
        limit = MAX_RESPONSE_BYTES
        read = 0
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                while read < limit:
                    # read(n), not readany(): whatever aiohttp has buffered may be far past the cap
                    chunk = await response.content.read(limit - read)
                    if not chunk:
                        return read, True
                    read += len(chunk)
        except (TimeoutError, aiohttp.ClientError):
            pass
        return read, False
