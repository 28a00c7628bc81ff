"""Leader election on a `coordination.k8s.io/v1` Lease, so that several replicas can run and
exactly one operates: the others stand by and take over within a lease of the leader's death.

Why a Lease and not kopf's peering: peering freezes kopf's handlers only, while this operator
also runs its own loops (admission, retention, webhook deliveries) and the progress endpoint,
which would keep acting in a frozen replica; and peering has no fencing (a partitioned replica
keeps acting until it notices). Here a replica starts kopf and everything else only once it holds
the Lease, and exits at once when it cannot renew it before the lease could have passed to a
standby (the pod restarts as a standby). The algorithm is client-go's (`leaderelection`): a holder
renews every `retry_period`; others take the Lease over when `renewTime + leaseDurationSeconds`
has passed; optimistic concurrency (resourceVersion) makes a takeover race have one winner.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from audio_extract_common.kube import AlreadyExists, Conflict, KubeError, NotFound

from .kube import Kube

log = logging.getLogger(__name__)


def lease_path(namespace: str, name: str | None = None) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases" + (f"/{name}" if name else "")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _micro(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Timing:
    """Seconds. A standby takes over at most `lease_duration + retry_period` after the leader's
    last renewal; the leader gives up after `renew_deadline` without one (< lease_duration, so it
    has stopped before anyone else can start)."""

    lease_duration: float = 8.0
    renew_deadline: float = 6.0
    retry_period: float = 1.0


def expired(lease: dict[str, Any], now: dt.datetime) -> bool:
    """Whether a Lease's holder has let it lapse (or there is no holder)."""
    spec = lease.get("spec") or {}
    renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
    if not spec.get("holderIdentity") or renewed is None:
        return True
    return now > renewed + dt.timedelta(seconds=spec.get("leaseDurationSeconds") or 0)


def claimed(lease: dict[str, Any] | None, identity: str, timing: Timing, now: dt.datetime) -> dict[str, Any]:
    """The Lease as `identity` holding it from `now` (a new one when `lease` is None)."""
    spec = dict((lease or {}).get("spec") or {})
    if spec.get("holderIdentity") != identity:
        spec["acquireTime"] = _micro(now)
        spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if lease else 0)
    spec.update(
        holderIdentity=identity,
        renewTime=_micro(now),
        leaseDurationSeconds=max(1, round(timing.lease_duration)),
    )
    body: dict[str, Any] = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": dict((lease or {}).get("metadata") or {}),
        "spec": spec,
    }
    return body


class LeaderElection:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        timing: Timing = Timing(),
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.kube, self.namespace, self.name, self.identity = kube, namespace, name, identity
        self.timing = timing
        # exiting the process is the only stop that cannot be delayed by a busy task
        self.on_lost = on_lost or (lambda: os._exit(70))
        self.leading = False
        self._renewed: float | None = None
        """Loop time at which the last successful attempt started (its renewTime, or just before)."""
        self._lost = False

    async def _try(self) -> bool:
        """One attempt to take or renew the Lease; True when this replica holds it afterwards."""
        started = asyncio.get_running_loop().time()
        now = _now()
        try:
            lease = await self.kube.call("GET", lease_path(self.namespace, self.name))
        except NotFound:
            lease = None
        if lease is not None:
            holder = (lease.get("spec") or {}).get("holderIdentity")
            if holder != self.identity and not expired(lease, now):
                return False
        body = claimed(lease, self.identity, self.timing, now)
        try:
            if lease is None:
                body["metadata"] = {"name": self.name, "namespace": self.namespace}
                await self.kube.call("POST", lease_path(self.namespace), body)
            else:  # metadata.resourceVersion: a concurrent writer makes this a 409
                await self.kube.call("PUT", lease_path(self.namespace, self.name), body)
        except (Conflict, AlreadyExists):
            return False
        self._renewed = started
        return True

    async def acquire(self) -> None:
        """Returns once this replica leads; until then it stands by."""
        announced = False
        while True:
            try:
                if await self._try():
                    self.leading = True
                    log.info("leading: %s holds lease %s/%s", self.identity, self.namespace, self.name)
                    return
            except KubeError as e:
                log.warning("lease %s/%s: %s", self.namespace, self.name, e)
            if not announced:
                log.info("standing by: lease %s/%s is held by another replica", self.namespace, self.name)
                announced = True
            await asyncio.sleep(self.timing.retry_period)

    def holding(self) -> asyncio.Task[None]:
        """`hold` as a task whose end for any reason but cancellation counts as the Lease lost:
        a renewal loop that died would otherwise leave this replica acting unrenewed."""
        task = asyncio.create_task(self.hold(), name="lease renewal")

        def ended(t: asyncio.Task[None]) -> None:
            if t.cancelled():
                return  # the operator is stopping: it releases the Lease itself
            if t.exception() is not None:
                log.error("renewing lease %s/%s stopped", self.namespace, self.name, exc_info=t.exception())
            self._lose()

        task.add_done_callback(ended)
        return task

    async def hold(self) -> None:
        """Renews the Lease until cancelled; calls `on_lost` once `renew_deadline` seconds have
        passed since the start of its last successful renewal, or another replica holds it."""
        loop = asyncio.get_running_loop()
        # The Lease's renewTime is stamped when an attempt starts, so the deadline counts from
        # there, and an attempt gets only what is left of it: a fresh timeout per attempt would
        # keep this replica acting after a standby may have taken over.
        if self._renewed is None:
            self._renewed = loop.time()
        while True:
            deadline = self._renewed + self.timing.renew_deadline
            await asyncio.sleep(max(0.0, min(self.timing.retry_period, deadline - loop.time())))
            renewed: bool | None = None
            if deadline > loop.time():
                try:
                    renewed = await asyncio.wait_for(self._try(), deadline - loop.time())
                except Exception as e:  # an odd answer is a failed renewal, not the end of renewing
                    log.warning("renewing lease %s/%s: %r", self.namespace, self.name, e)
            if renewed is False or (renewed is None and deadline <= loop.time()):
                self._lose()
                return

    def _lose(self) -> None:
        self.leading = False
        if self._lost:
            return
        self._lost = True
        log.error("lost lease %s/%s: stopping so that one replica acts", self.namespace, self.name)
        self.on_lost()

    async def release(self) -> None:
        """On a clean stop: hand the Lease over at once instead of after it expires."""
        if not self.leading:
            return
        self.leading = False
        try:
            lease = await self.kube.call("GET", lease_path(self.namespace, self.name))
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = None
                lease["spec"]["leaseDurationSeconds"] = 1
                await self.kube.call("PUT", lease_path(self.namespace, self.name), lease)
        except KubeError as e:
            log.warning("releasing lease %s/%s: %s", self.namespace, self.name, e)
