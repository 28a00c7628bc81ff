"""Kubernetes Events for the batch's transitions (``kubectl describe`` shows them).

Events are best effort: the API server may drop or aggregate them and they expire within about an
hour, so every outcome also lands in status. A failed post is logged, never raised.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from audio_extract_common.kube import KubeError
from audio_extract_common.timefmt import iso, now

from .kube import Kube

log = logging.getLogger(__name__)
COMPONENT = "audio-extract-operator"


def event_body(obj: Mapping[str, Any], type_: str, reason: str, message: str, at: str) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": at,
        "lastTimestamp": at,
        "count": 1,
    }


async def post(kube: Kube, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    body = event_body(obj, type_, reason, message, iso(now()))
    try:
        await kube.call("POST", f"/api/v1/namespaces/{body['metadata']['namespace']}/events", body)
    except KubeError as e:
        log.warning("could not post event %s on %s: %s", reason, obj["metadata"]["name"], e)
