"""Which queued Jobs to admit: ``high`` before ``normal`` before ``low``, FIFO within a priority,
never more than the cluster-wide running limit. Pure; the operator's admission loop applies it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

PRIORITY_RANK = {"high": 0, "normal": 1, "low": 2}


@dataclass(frozen=True)
class Candidate:
    namespace: str
    name: str
    """The Job's name."""
    priority: str
    created: str
    """The batch's creationTimestamp (ISO 8601, so it sorts as text)."""
    index: int
    """Position in the batch: ties within one batch keep the submitted order."""

    def order(self) -> tuple[int, str, str, str, int]:
        return (PRIORITY_RANK.get(self.priority, 1), self.created, self.namespace, self.name[:-2], self.index)


def to_admit(queued: Iterable[Candidate], running: int, limit: int) -> list[Candidate]:
    """The next Jobs to unsuspend, in order; empty when ``running`` already reaches ``limit``."""
    free = max(0, limit - running)
    return sorted(queued, key=Candidate.order)[:free]
