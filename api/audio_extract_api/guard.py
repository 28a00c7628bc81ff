"""Submission-time checks that need the outside world: URL addresses and upload ids.

An upload id must name an upload of the caller's tenant (any, for an admin key) whose bytes are in
place: another tenant's is refused exactly like one that does not exist, and a direct upload whose
bytes have not arrived is "not complete". A use marks the upload as used now, which its expiry
counts from.

Every source and webhook URL is resolved and each answer checked with the shared address guard
(``audio_extract_common.address_policy``): loopback, private, link-local, metadata and other special
addresses are refused unless the configured allowlist names them. A name that does not resolve
is refused too (the job could only fail). This is a early courtesy check; the worker and the
webhook sender check again at connect time, with no second lookup, because DNS can change.

Lookups go through the process's :class:`BoundedResolver` (its own threads, a timeout per name,
one lookup per name at a time) and each request has a budget: ``per_request`` lookups at once
and a ``deadline`` for all of them. A name not resolved in time is not the client's error, so it
is not 400: the submission is refused with 503 SERVICE_UNAVAILABLE and Retry-After, naming the
fields not checked, and nothing is created. A definite refusal (400) wins over a late answer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import anyio

from audio_extract_common import address_policy
from audio_extract_common.batch_spec import ExtractionJob
from audio_extract_common.resolver import BoundedResolver, LookupTimeout
from audio_extract_common.storage import Storage

from .auth import Principal
from .errors import InvalidRequest, InvalidSource, ServiceUnavailable
from .settings import Settings
from .upload_quota import claim


@dataclass(frozen=True)
class HostChecks:
    """How submissions check hosts: the process's resolver and allowlist, each request's budget."""

    resolver: BoundedResolver
    allow: address_policy.AllowList
    per_request: int
    deadline: float

    @classmethod
    def from_settings(cls, s: Settings) -> HostChecks:
        return cls(
            BoundedResolver(threads=s.resolve_threads, timeout=s.resolve_timeout_seconds),
            address_policy.AllowList.parse(s.allow_cidrs),
            s.resolve_per_request,
            s.resolve_deadline_seconds,
        )


@dataclass(frozen=True)
class _Late:
    reason: str


async def _check(url: str, hosts: HostChecks, timeout: float) -> str | _Late | None:
    try:
        await hosts.resolver.resolve_url_checked(url, hosts.allow, timeout)
    except LookupTimeout as e:
        return _Late(str(e))
    except address_policy.NetguardError as e:
        return str(e)
    return None


async def check_jobs(
    jobs: list[ExtractionJob],
    batch_webhook: str | None,
    hosts: HostChecks,
    store: Storage,
    who: Principal,
    prefix: str = "jobs",
) -> None:
    """Raise INVALID_SOURCE (any bad source) or INVALID_REQUEST (a bad webhook), naming every field;
    SERVICE_UNAVAILABLE when some host could not be checked within the request's deadline."""
    targets: list[tuple[str, str, bool]] = []  # (field, url, is_source)
    missing: list[dict[str, str]] = []
    for i, job in enumerate(jobs):
        at = f"{prefix}[{i}]." if prefix else ""
        if job.source.type == "url" and job.source.url:
            targets.append((f"{at}source.url", job.source.url, True))
        elif job.source.file and (refused := await claim(store, who, job.source.file)):
            missing.append({"field": f"{at}source.file", "message": refused})
        if job.options.webhook:
            targets.append((f"{at}options.webhook", job.options.webhook, False))
    if batch_webhook:
        targets.append(("webhook", batch_webhook, False))

    loop = asyncio.get_running_loop()
    ends = loop.time() + hosts.deadline
    slots = asyncio.Semaphore(hosts.per_request)
    not_checked = _Late(f"not checked within the request's deadline ({hosts.deadline:g} s)")
    verdicts: dict[str, str | _Late | None] = {}  # a batch often repeats one URL: check it once

    async def run(url: str) -> None:
        async with slots:
            left = ends - loop.time()
            verdicts[url] = await _check(url, hosts, left) if left > 0 else not_checked

    async with anyio.create_task_group() as tg:
        for url in dict.fromkeys(url for _, url, _ in targets):
            tg.start_soon(run, url)

    found = [(f, src, verdicts[url]) for f, url, src in targets]
    bad_sources = missing + [{"field": f, "message": v} for f, src, v in found if isinstance(v, str) and src]
    bad_hooks = [{"field": f, "message": v} for f, src, v in found if isinstance(v, str) and not src]
    late = [{"field": f, "message": v.reason} for f, _, v in found if isinstance(v, _Late)]
    if bad_sources:
        raise InvalidSource("Source refused", bad_sources + bad_hooks)
    if bad_hooks:
        raise InvalidRequest("Webhook URL refused", bad_hooks)
    if late:
        raise ServiceUnavailable("Host names could not be resolved in time; retry later", late)
