"""What to submit: sources (URLs or local files) and manifests turned into batch bodies (pure)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from audio_extract_common.ids import MAX_JOBS

T = TypeVar("T")


@dataclass(frozen=True)
class SourceItem:
    """One source as the user named it: a URL, or a local file to upload first."""

    label: str
    url: str | None = None
    path: Path | None = None


def is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


def classify(sources: Sequence[str]) -> list[SourceItem]:
    """URLs stay URLs; anything else must be a readable local file."""
    items = []
    for source in sources:
        if is_url(source):
            items.append(SourceItem(label=source, url=source))
            continue
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"{source}: neither an http(s) URL nor a file")
        items.append(SourceItem(label=source, path=path))
    return items


def chunks(items: Sequence[T], size: int = MAX_JOBS) -> list[list[T]]:
    """At most ``size`` (the API's batch limit) per batch, in order."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def output_of(
    fmt: str,
    quality: str,
    bitrate: str | None = None,
    normalize: bool = False,
    preserve_metadata: bool = False,
    sample_rate: int | None = None,
    channels: int | None = None,
) -> dict[str, Any]:
    output: dict[str, Any] = {"format": fmt, "quality": quality}
    optional = {"bitrate": bitrate, "sampleRate": sample_rate, "channels": channels}
    output.update({k: v for k, v in optional.items() if v is not None})
    if normalize:
        output["normalize"] = True
    if preserve_metadata:
        output["preserveMetadata"] = True
    return output


def job_of(
    item: SourceItem,
    output: dict[str, Any],
    upload_id: str | None = None,
    priority: str | None = None,
    webhook: str | None = None,
) -> dict[str, Any]:
    """One job. An uploaded file keeps its own name for the output (the API would otherwise name it
    after the upload id)."""
    options: dict[str, Any] = {}
    if item.url:
        source: dict[str, Any] = {"type": "url", "url": item.url}
    else:
        assert item.path is not None and upload_id, "a local file is uploaded before its job is made"
        source = {"type": "upload", "file": upload_id}
        options["filename"] = item.path.stem
    if priority:
        options["priority"] = priority
    if webhook:
        options["webhook"] = webhook
    job: dict[str, Any] = {"source": source, "output": dict(output)}
    if options:
        job["options"] = options
    return job


class ManifestError(ValueError):
    """A manifest that holds no batch the API could take."""


def batches_of_manifest(text: str, name: str = "manifest") -> list[dict[str, Any]]:
    """The batch bodies (``{"jobs": [...], "webhook": ...}``) of a YAML or JSON manifest: one or
    more ``ExtractionBatch`` objects (as ``kubectl apply`` takes them: ``spec.jobs``, ``spec.webhook``;
    metadata is the cluster's business, the API names and labels its own) or bare batch bodies.
    A batch of more than 10 jobs is split like ``submit`` splits its sources."""
    try:
        documents = (
            [json.loads(text)] if text.lstrip().startswith(("{", "[")) else list(yaml.safe_load_all(text))
        )
    except (ValueError, yaml.YAMLError) as e:
        raise ManifestError(f"{name}: not YAML or JSON: {e}") from None
    flat: list[Any] = []
    for doc in documents:
        if isinstance(doc, list):
            flat.extend(doc)
        elif isinstance(doc, dict) and doc.get("kind") == "List":
            flat.extend(doc.get("items") or [])
        elif doc is not None:
            flat.append(doc)
    bodies = []
    for i, doc in enumerate(flat):
        spec = doc.get("spec") if isinstance(doc, dict) and "spec" in doc else doc
        if not isinstance(spec, dict) or not isinstance(spec.get("jobs"), list) or not spec["jobs"]:
            raise ManifestError(f"{name}: document {i + 1} has no jobs (spec.jobs)")
        if spec.get("cancel") or spec.get("cancelJobs"):
            raise ManifestError(f"{name}: document {i + 1} asks for cancellation; use `audio-extract cancel`")
        for part in chunks(spec["jobs"]):
            body: dict[str, Any] = {"jobs": part}
            if spec.get("webhook"):
                body["webhook"] = spec["webhook"]
            bodies.append(body)
    if not bodies:
        raise ManifestError(f"{name}: no batch in it")
    return bodies


def job_label(job: dict[str, Any]) -> str:
    """How a manifest's job is shown: its source URL or upload id."""
    source = job.get("source") or {}
    return str(source.get("url") or source.get("file") or "?")
