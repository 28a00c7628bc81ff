"""``Kube.call`` counts every request it makes by method, resource and answer
(``audio_extract_operator_kube_requests_total``), against a real HTTP server standing in for the
API server: what a platform team reads to see which of the operator's calls load the API server."""

from __future__ import annotations

from pathlib import Path

import pytest

from audio_extract_common.kube import NotFound
from audio_extract_operator import metrics
from audio_extract_operator.kube import Kube, resource_of
from support.kubeconfigs import kubeconfig_for
from support.loopback_servers import Server, json_route

NAME = "audio_extract_operator_kube_requests_total"


def count(method: str, resource: str, code: str) -> float:
    labels = {"method": method, "resource": resource, "code": code}
    return metrics.REGISTRY.get_sample_value(NAME, labels) or 0.0


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        ("/apis/batch/v1/namespaces/ns/jobs/job-a", "jobs"),
        ("/apis/batch/v1/jobs", "jobs"),
        ("/api/v1/namespaces/ns/pods?labelSelector=x", "pods"),
        ("/apis/audioextract.io/v1/namespaces/ns/extractionbatches/b/status", "extractionbatches/status"),
        ("/apis/audioextract.io/v1/extractionbatches", "extractionbatches"),
        ("/apis/coordination.k8s.io/v1/namespaces/ns/leases/l", "leases"),
        ("/api/v1/namespaces/ns", "namespaces"),
        ("/version", "-"),
    ],
)
def test_the_resource_of_a_path(path: str, resource: str) -> None:
    assert resource_of(path) == resource


async def test_each_call_is_counted_with_its_answer(tmp_path: Path) -> None:
    server = Server(routes={"/apis/batch/v1/namespaces/ns/jobs/j": json_route({"kind": "Job"})}).start()
    (tmp_path / "kubeconfig").write_text(kubeconfig_for(server.url("")))
    kube = await Kube.connect(str(tmp_path / "kubeconfig"))
    before = count("GET", "jobs", "2xx"), count("GET", "pods", "404")
    try:
        assert (await kube.get_job("ns", "j"))["kind"] == "Job"
        assert (await kube.get_job("ns", "j"))["kind"] == "Job"
        with pytest.raises(NotFound):  # the stand-in answers 404 for every other path
            await kube.list_pods("ns", "a=b")
    finally:
        await kube.close()
        server.stop()
    assert count("GET", "jobs", "2xx") - before[0] == 2
    assert count("GET", "pods", "404") - before[1] == 1
