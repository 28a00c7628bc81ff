"""What the ExtractionBatch custom resource is called: its group, version, kind and names, and the
object to create for a spec."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .batch_spec import BatchSpec

GROUP = "audioextract.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ExtractionBatch"
PLURAL = "extractionbatches"
SINGULAR = "extractionbatch"
SHORT_NAMES = ["eb", "xb"]
CATEGORIES = ["audio-extract"]


def manifest(
    name: str,
    spec: BatchSpec,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An ExtractionBatch object ready to create."""
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": meta,
        "spec": spec.model_dump(mode="json", exclude_none=True),
    }
