"""Kueue mode: what Kueue says of the workloads of queued jobs, written into their status entries.

With a LocalQueue set, Kueue admits the operator's Jobs (it makes a Workload per Job and
unsuspends the Job once the Workload is admitted), and may suspend a running Job again to preempt
it. While a job waits, the reason is Kueue's, not the operator's: the Workload's conditions say
it (e.g. "couldn't assign flavors to pod set main: insufficient unused quota for cpu in flavor
default, 500m more needed"), and the loop below copies it into the job's ``queueReason``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from . import metrics
from .kube import Kube
from .reconcile import Reconciler
from .registry import Ref, Registry
from .settings import Settings

log = logging.getLogger(__name__)

WORKLOADS = "/apis/kueue.x-k8s.io/v1beta2"
WAITING = "waiting for Kueue to admit its workload"
# the conditions that say why an unadmitted Workload waits, the most telling first
WHY_CONDITIONS = ("Evicted", "Preempted", "QuotaReserved")


def workloads_path(namespace: str | None) -> str:
    return f"{WORKLOADS}/namespaces/{namespace}/workloads" if namespace else f"{WORKLOADS}/workloads"


def owner_job(workload: Mapping[str, Any]) -> str | None:
    """The name of the batch/v1 Job a Workload stands for."""
    for ref in (workload.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "Job" and ref.get("apiVersion") == "batch/v1":
            return str(ref.get("name"))
    return None


def _conditions(workload: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {c.get("type", ""): c for c in (workload.get("status") or {}).get("conditions") or []}


def waiting_reason(workload: Mapping[str, Any]) -> str | None:
    """Why the Workload waits, in Kueue's words; None once it is admitted or finished."""
    conditions = _conditions(workload)
    if any(conditions.get(t, {}).get("status") == "True" for t in ("Admitted", "Finished")):
        return None
    for type_ in WHY_CONDITIONS:
        c = conditions.get(type_)
        if c is None or not c.get("message"):
            continue
        if type_ == "QuotaReserved" and c.get("status") == "True":
            continue  # quota held, admission checks pending: nothing more telling to say
        if type_ != "QuotaReserved" and c.get("status") != "True":
            continue
        return str(c["message"])[:500]
    return WAITING


class KueueReasons:
    """Copies each queued job's waiting reason from its Workload, writing only what changed."""

    def __init__(self, kube: Kube, registry: Registry, reconciler: Reconciler) -> None:
        self.kube = kube
        self.registry = registry
        self.reconciler = reconciler
        self.written: dict[Ref, str] = {}

    async def sync(self, namespaces: list[str] | None, page_size: int) -> None:
        seen: set[Ref] = set()
        scopes: list[str | None] = list(namespaces) if namespaces else [None]
        for ns in scopes:
            async for page, _ in self.kube.pages(workloads_path(ns), page_size):
                for workload in page:
                    name = owner_job(workload)
                    ref = ((workload.get("metadata") or {}).get("namespace", ""), name or "")
                    info = self.registry.jobs.get(ref) if name else None
                    reason = waiting_reason(workload)
                    if info is None or reason is None:
                        continue
                    seen.add(ref)
                    if self.written.get(ref) != reason:
                        await self.reconciler.queue_reason(info, reason)
                        self.written[ref] = reason
        # admitted, finished or gone: a later wait (a preemption) is written again
        self.written = {ref: r for ref, r in self.written.items() if ref in seen}


async def kueue_loop(kube: Kube, settings: Settings, registry: Registry, reconciler: Reconciler) -> None:
    reasons = KueueReasons(kube, registry, reconciler)
    while True:
        try:
            if registry.jobs_synced:
                await reasons.sync(settings.namespaces, settings.list_page_size)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the loop must outlive any one pass (an odd Workload, a bug)
            metrics.reconcile_error("kueue")
            log.warning("reading Kueue's workloads failed: %s", e)
        await asyncio.sleep(settings.admission.interval)
