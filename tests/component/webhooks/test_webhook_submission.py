"""Webhook URLs on loopback/private/metadata addresses are refused at submission: the API's check
(``audio_extract_api.guard.check_jobs``, the shared address guard) with real resolution."""

from __future__ import annotations

import pytest

from audio_extract_api.auth import Principal
from audio_extract_api.errors import InvalidRequest
from audio_extract_api.guard import HostChecks, check_jobs
from audio_extract_common import address_policy
from audio_extract_common.batch_spec import ExtractionJob
from audio_extract_common.resolver import BoundedResolver
from audio_extract_common.store import FilesystemStore

WHO = Principal("ci", frozenset({"read", "write"}), "ci")
REFUSED = [
    "http://127.0.0.1/hook",  # literal
    "http://[::ffff:127.0.0.1]/hook",
    "http://2130706433/hook",
    "http://0x7f.1/hook",  # encoded
    "http://0177.0.0.1/hook",
    "http://127.1/hook",
    "http://localhost/hook",
    "http://LOCALHOST./hook",  # names resolving to loopback
    "http://169.254.169.254/latest/meta-data",
    "http://[fd00:ec2::254]/",
    "http://10.0.0.7/",
]


def hosts(allow: str = "") -> HostChecks:
    return HostChecks(BoundedResolver(), address_policy.AllowList.parse(allow), per_request=4, deadline=5.0)


def job(webhook: str | None = None) -> ExtractionJob:
    body = {"source": {"type": "url", "url": "http://93.184.215.14/v.mp4"}, "output": {"format": "mp3"}}
    if webhook:
        body["options"] = {"webhook": webhook}
    return ExtractionJob.model_validate(body)


@pytest.mark.parametrize("url", REFUSED)
async def test_blocked_webhook_refused_at_submission(url, tmp_path):
    store = FilesystemStore(tmp_path)
    with pytest.raises(InvalidRequest) as batch_level:
        await check_jobs([job()], url, hosts(), store, WHO)
    with pytest.raises(InvalidRequest) as job_level:
        await check_jobs([job(), job(url)], None, hosts(), store, WHO)
    assert "webhook" in str(batch_level.value.details) and "jobs[1].options.webhook" in str(
        job_level.value.details
    )


async def test_allowlisted_loopback_is_accepted_for_development(tmp_path):
    await check_jobs(
        [job("http://127.0.0.1:9/hook")], None, hosts("127.0.0.0/8"), FilesystemStore(tmp_path), WHO
    )
