"""The API's watch of batches when the API server refuses it: an error, not an empty stream
(which would make the queue re-watch in a hot loop)."""

from __future__ import annotations

import asyncio

import pytest

from audio_extract_api.errors import ApiError
from audio_extract_api.kube import Kube

pytestmark = pytest.mark.cluster


@pytest.fixture
def api_role_rules(api_role_rules):
    """The chart's API rules without `watch` (overrides the conftest fixture for this module)."""
    return [{**rule, "verbs": [v for v in rule["verbs"] if v != "watch"]} for rule in api_role_rules]


async def _list_when_ready(kube: Kube) -> str:
    """A freshly created CRD answers 429 "storage is (re)initializing" for a moment."""
    for _ in range(50):
        try:
            return (await kube.list())[1]
        except ApiError:
            await asyncio.sleep(0.2)
    return (await kube.list())[1]


async def test_a_refused_watch_raises_service_unavailable(api_settings):
    kube = Kube(api_settings)
    try:
        rv = await _list_when_ready(kube)
        with pytest.raises(ApiError) as err:
            async for _ in kube.watch(rv, timeout_seconds=5):
                pass
        assert err.value.code == "SERVICE_UNAVAILABLE"
    finally:
        await kube.close()
