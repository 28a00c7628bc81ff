"""Submission-time checks that need the outside world: URL addresses and upload ids.

Every source and webhook URL is resolved and each answer checked with the shared address guard
(``audio_extract_common.netguard``): loopback, private, link-local, metadata and other special
addresses are refused unless the configured allowlist names them. A name that does not resolve
is refused too (the job could only fail). This is a early courtesy check; the worker and the
webhook sender check again at connect time, with no second lookup, because DNS can change.
"""

from __future__ import annotations

import ipaddress

import anyio
import anyio.to_thread

from audio_extract_common import netguard
from audio_extract_common.resource import ExtractionJob
from audio_extract_common.store import FilesystemStore, upload_key

from .errors import InvalidRequest, InvalidSource


def _is_literal(url: str) -> bool:
    """An IP-literal host needs no DNS: getaddrinfo answers at once, no thread needed."""
    try:
        host = netguard.parse_url(url).host
        ipaddress.ip_address(host)
    except (netguard.NetguardError, ValueError):
        return False
    return True


async def _check(url: str, allow: netguard.AllowList) -> str | None:
    try:
        if _is_literal(url):
            netguard.check_url(url, allow)
        else:
            await anyio.to_thread.run_sync(netguard.check_url, url, allow)
    except netguard.NetguardError as e:
        return str(e)
    return None


async def check_jobs(jobs: list[ExtractionJob], batch_webhook: str | None, allow: netguard.AllowList,
                     store: FilesystemStore, prefix: str = "jobs") -> None:
    """Raise INVALID_SOURCE (any bad source) or INVALID_REQUEST (a bad webhook), naming every field."""
    targets: list[tuple[str, str, bool]] = []  # (field, url, is_source)
    missing: list[dict[str, str]] = []
    for i, job in enumerate(jobs):
        at = f"{prefix}[{i}]." if prefix else ""
        if job.source.type == "url" and job.source.url:
            targets.append((f"{at}source.url", job.source.url, True))
        elif job.source.file and store.size(upload_key(job.source.file)) is None:
            missing.append({"field": f"{at}source.file", "message": f"no upload {job.source.file!r}"})
        if job.options.webhook:
            targets.append((f"{at}options.webhook", job.options.webhook, False))
    if batch_webhook:
        targets.append(("webhook", batch_webhook, False))

    verdicts: dict[str, str | None] = {}  # a batch often repeats one URL: check it once

    async def run(url: str) -> None:
        verdicts[url] = await _check(url, allow)

    async with anyio.create_task_group() as tg:
        for url in {url for _, url, _ in targets}:
            tg.start_soon(run, url)
    results = [verdicts[url] for _, url, _ in targets]

    found = list(zip(targets, results, strict=True))
    bad_sources = missing + [{"field": f, "message": r} for (f, _, src), r in found if r and src]
    bad_hooks = [{"field": f, "message": r} for (f, _, src), r in found if r and not src]
    if bad_sources:
        raise InvalidSource("Source refused", bad_sources + bad_hooks)
    if bad_hooks:
        raise InvalidRequest("Webhook URL refused", bad_hooks)
