"""The OpenAPI document: OpenAPI 3.1 with servers and both path prefixes, error
codes as enums from the one list the API raises from, the headers the responses carry, examples
for every request and response that validate against their schemas, the webhook events as the
operator sends them, nothing Kubernetes-only, and a client generated from it by
openapi-python-client that builds, round-trips every example and talks to the real app."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema_rs
import pytest
from api_fakekube import FakeKube

from audio_extract_api import bodies
from audio_extract_api.errors import API_ERRORS, ROUTING_ERRORS
from audio_extract_common.batch_status import BatchStatus, ErrorCode, JobStatus
from audio_extract_operator.webhooks import events
from support.api_keys import KEY
from support.client_codegen import GeneratedClient, generate

CONTRACT_API_CODES = {  # docs/contract.md §4 and §7
    "UNAUTHORIZED",
    "FORBIDDEN",
    "INVALID_REQUEST",
    "INVALID_SOURCE",
    "INVALID_OUTPUT",
    "INVALID_JOB_ID",
    "TOO_MANY_JOBS",
    "PAYLOAD_TOO_LARGE",
    "JOB_NOT_FOUND",
    "JOB_NOT_COMPLETED",
    "FILE_EXPIRED",
    "IDEMPOTENCY_CONFLICT",
    "RATE_LIMITED",
    "QUEUE_FULL",
    "SERVICE_UNAVAILABLE",
    "INTERNAL_ERROR",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "QUOTA_EXCEEDED",
    "STORE_FULL",
}
CONTRACT_JOB_CODES = [
    "DOWNLOAD_FAILED",
    "SOURCE_TOO_LARGE",
    "INVALID_VIDEO",
    "NO_AUDIO_STREAM",
    "EXTRACTION_FAILED",
    "TIMEOUT",
    "CANCELLED",
    "INTERNAL_ERROR",
]
PUBLIC = "http://8.8.8.8/video.mp4"  # a literal public address: checked without DNS


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from audio_extract_api.app import create_app
    from audio_extract_api.settings import Settings

    tmp = tmp_path_factory.mktemp("doc")
    return create_app(
        Settings(kubeconfig=tmp / "none", api_keys_path=tmp / "none", store_root=tmp, idempotency_secret="x")
    ).openapi()


@pytest.fixture(scope="module")
def generated(doc: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> GeneratedClient:
    return generate(doc, tmp_path_factory.mktemp("client"))


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for section in ("paths", "webhooks"):
        for path, item in doc.get(section, {}).items():
            for method, op in item.items():
                if isinstance(op, dict) and "operationId" in op:
                    yield f"{method.upper()} {path}", op["operationId"], op


def json_media(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every JSON request body and response of every operation and webhook."""
    for label, _, op in operations(doc):
        if media := op.get("requestBody", {}).get("content", {}).get("application/json"):
            yield f"{label} request", media
        for status, response in op["responses"].items():
            if media := response.get("content", {}).get("application/json"):
                yield f"{label} {status}", media


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> Any:
    return jsonschema_rs.Draft202012Validator({**schema, "components": doc["components"]})


def test_openapi_3_1_with_servers_and_both_prefixes(doc):
    assert doc["openapi"].startswith("3.1.")
    assert doc["servers"] == [{"url": "/", "description": doc["servers"][0]["description"]}]
    public = [p for p in doc["paths"] if p not in ("/healthz", "/readyz")]
    assert len(public) == 8 and all(p.startswith("/v1/") for p in public)
    for path in public:
        assert [s["url"] for s in doc["paths"][path]["servers"]] == ["/", "/audio-extract"], path
    assert "/audio-extract/v1" in doc["info"]["description"]
    assert "servers" not in doc["paths"]["/healthz"]  # served at the root only


def test_operation_ids_are_the_handlers_names(doc):
    assert sorted(op_id for label, op_id, _ in operations(doc) if " /" in label) == [
        "cancel_batch",
        "cancel_job",
        "get_batch",
        "get_download",
        "get_status",
        "healthz",
        "post_batch",
        "post_extract",
        "post_upload",
        "readyz",
    ]


def test_no_kubernetes_only_keywords(doc):
    text = json.dumps(doc)
    assert "x-kubernetes" not in text
    assert "self.matches(" not in text and "oldSelf" not in text  # CEL
    # ...which the CRD keeps: the document and the CRD come from the same models.
    from audio_extract_dev.crdgen import crd

    assert "x-kubernetes-validations" in json.dumps(crd())


def test_error_codes_are_enums_from_the_one_list(doc):
    schemas = doc["components"]["schemas"]
    codes = schemas["ApiErrorCode"]["enum"]
    assert codes == list(dict.fromkeys(cls.code for cls in API_ERRORS))
    assert set(codes) == CONTRACT_API_CODES
    assert schemas["JobErrorCode"]["enum"] == [c.value for c in ErrorCode] == CONTRACT_JOB_CODES
    assert schemas["ErrorBody"]["properties"]["code"] == {"$ref": "#/components/schemas/ApiErrorCode"}
    for name in ("JobErrorView", "JobFailedBody"):
        assert schemas[name]["properties"]["code"] == {"$ref": "#/components/schemas/JobErrorCode"}
    download_409 = doc["paths"]["/v1/download/{jobId}"]["get"]["responses"]["409"]
    assert download_409["content"]["application/json"]["schema"]["$ref"].endswith("/JobFailedEnvelope")


def is_webhook(label: str) -> bool:
    return not label.split()[1].startswith("/")


def test_error_responses_name_their_codes_and_headers(doc):
    seen = set()
    for label, _, op in operations(doc):
        if is_webhook(label):
            continue
        for status, response in op["responses"].items():
            headers = response.get("headers", {})
            if status == "401":
                assert "WWW-Authenticate" in headers, label
            if status in ("429", "503"):
                assert headers["Retry-After"]["schema"]["type"] == "integer", label
            if status.isdigit() and int(status) >= 400 and "ErrorEnvelope" in json.dumps(response):
                listed = {c for c in CONTRACT_API_CODES if f"`{c}`" in response["description"]}
                assert listed, (label, status)
                seen |= listed
    assert seen == CONTRACT_API_CODES - {"JOB_NOT_COMPLETED"} - {c.code for c in ROUTING_ERRORS}
    download = doc["paths"]["/v1/download/{jobId}"]["get"]["responses"]
    assert "Retry-After" in download["202"]["headers"]
    assert {"Content-Disposition", "Content-Length"} <= set(download["200"]["headers"])
    assert "Content-Range" in download["206"]["headers"]


def test_every_json_request_and_response_has_valid_examples(doc):
    count = 0
    for label, media in json_media(doc):
        examples = media.get("examples")
        assert examples, f"{label}: no examples"
        check = validator(doc, media["schema"])
        for name, example in examples.items():
            errors = [e.message for e in check.iter_errors(example["value"])]
            assert not errors, (label, name, errors)
            count += 1
    assert count > 40


def test_every_parameter_has_an_example(doc):
    for label, _, op in operations(doc):
        for param in op.get("parameters", []):
            assert "example" in param, (label, param["name"])
            assert not list(validator(doc, param["schema"]).iter_errors(param["example"])), (label, param)


def test_request_examples_are_accepted_by_the_api_and_include_the_contracts(doc):
    batch = doc["paths"]["/v1/batch"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    for example in batch.values():
        bodies.parse_batch(example["value"])
    one = doc["paths"]["/v1/extract"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    for example in one.values():
        bodies.parse_job(example["value"])
    outputs = [[j["output"] for j in e["value"]["jobs"]] for e in batch.values()]
    assert [{"format": "mp3", "quality": "high"}, {"format": "flac", "normalize": True}] in outputs
    assert {"format": "aac", "bitrate": "256k", "preserveMetadata": True} in [o for os in outputs for o in os]
    status = doc["paths"]["/v1/status/{jobId}"]["get"]["parameters"][0]
    assert status["example"] == "job_a1b2c3d4e5f6g7h8"  # the contract's own example id


def _job(**fields: Any) -> JobStatus:
    return JobStatus(
        index=0, jobId="job_0123456789abcdef", jobName="j", completedAt="2026-01-21T12:36:10Z", **fields
    )


@pytest.mark.parametrize(
    "event,job",
    [
        (
            "job.completed",
            _job(
                status="completed",
                outputFile={
                    "filename": "a.mp3",
                    "path": "job_0123456789abcdef/a.mp3",
                    "size": 10,
                    "duration": 1.0,
                    "format": "mp3",
                    "bitrate": "128k",
                },
            ),
        ),
        ("job.failed", _job(status="failed", error={"code": "NO_AUDIO_STREAM", "message": "no audio"})),
        ("job.failed", _job(status="cancelled", error={"code": "CANCELLED", "message": "cancelled"})),
        ("job.failed", _job(status="failed")),
    ],
)
def test_webhooks_document_the_operators_job_events(doc, event, job):
    body = events.job_payload(job, "batch_0123456789abcdef", "2026-01-21T12:36:10Z", "/audio-extract/v1")
    assert body["event"] == event
    check_webhook(doc, event, body)


def test_webhooks_document_the_operators_batch_event(doc):
    status = BatchStatus(jobs=[_job(status="completed"), _job(status="cancelled")])
    body = events.batch_payload(status, "batch_0123456789abcdef", "2026-01-21T12:36:10Z")
    check_webhook(doc, "batch.completed", body)


def check_webhook(doc: dict[str, Any], event: str, body: dict[str, Any]) -> None:
    op = doc["webhooks"][event]["post"]
    assert [p["name"] for p in op["parameters"]] == ["webhook-id", "webhook-timestamp", "webhook-signature"]
    assert all(p["in"] == "header" and p["required"] for p in op["parameters"])
    media = op["requestBody"]["content"]["application/json"]
    assert not [e.message for e in validator(doc, media["schema"]).iter_errors(body)]
    for example in media["examples"].values():
        assert set(example["value"]) == set(body), "the example has the keys the operator sends"


def test_the_three_webhook_events(doc):
    assert sorted(doc["webhooks"]) == ["batch.completed", "job.completed", "job.failed"]


# --- the generated client ------------------------------------------------------------------------


def test_generated_client_imports_with_its_enums(generated):
    models = generated.models
    assert {c.value for c in models.ApiErrorCode} == CONTRACT_API_CODES
    assert {c.value for c in models.JobErrorCode} == set(CONTRACT_JOB_CODES)
    for name in ("JobCompletedEvent", "JobFailedEvent", "BatchCompletedEvent", "BatchRequest", "JobView"):
        assert hasattr(models, name)


def _call(
    generated: GeneratedClient, op: dict[str, Any], op_id: str, reply: httpx.Response, body: Any = None
) -> tuple[Any, httpx.Request]:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return reply

    kwargs: dict[str, Any] = {
        re.sub(r"(?<!^)([A-Z])", r"_\1", p["name"]).lower(): p["example"]
        for p in op.get("parameters", [])
        if p["in"] == "path"
    }
    if body is not None:
        kwargs["body"] = body
    with generated.authenticated("http://api.test", KEY, transport=httpx.MockTransport(answer)) as c:
        result = generated.op(op_id).sync_detailed(client=c, **kwargs)
    return result, sent[0]


def test_generated_client_round_trips_every_example(doc, generated):
    count = 0
    for label, op_id, op in operations(doc):
        if is_webhook(label):
            continue  # webhooks: checked below through their models
        body = None
        if media := op.get("requestBody", {}).get("content", {}).get("application/json"):
            model = getattr(generated.models, media["schema"]["$ref"].rpartition("/")[2])
            for example in media["examples"].values():
                assert model.from_dict(example["value"]).to_dict() == example["value"], label
            body = model.from_dict(next(iter(media["examples"].values()))["value"])
        for status, response in op["responses"].items():
            examples = response.get("content", {}).get("application/json", {}).get("examples", {})
            for name, example in examples.items():
                reply = httpx.Response(int(status), json=example["value"])
                result, request = _call(generated, op, op_id, reply, body)
                assert request.headers["X-API-Key"] == KEY
                if body is not None:
                    assert json.loads(request.content) == body.to_dict()
                assert result.parsed.to_dict() == example["value"], (label, status, name)
                count += 1
    assert count > 40


def test_generated_client_round_trips_webhook_examples(doc, generated):
    for event, item in doc["webhooks"].items():
        media = item["post"]["requestBody"]["content"]["application/json"]
        model = getattr(generated.models, media["schema"]["$ref"].rpartition("/")[2])
        for example in media["examples"].values():
            assert model.from_dict(example["value"]).to_dict() == example["value"], event


async def test_generated_client_against_the_app(make_client, generated):
    models = generated.models
    async with make_client() as http:
        FakeKube().install(http.app)
        transport = httpx.ASGITransport(app=http.app)
        async with generated.authenticated("http://api.test", KEY, transport=transport) as c:
            request = models.BatchRequest.from_dict(
                {
                    "jobs": [
                        {
                            "source": {"type": "url", "url": PUBLIC},
                            "output": {"format": "mp3", "quality": "high"},
                        },
                        {
                            "source": {"type": "url", "url": PUBLIC},
                            "output": {"format": "flac", "normalize": True},
                        },
                    ]
                }
            )
            submitted = await generated.op("post_batch").asyncio_detailed(client=c, body=request)
            assert submitted.status_code == 202, submitted.content
            accepted = submitted.parsed
            assert isinstance(accepted, models.EnvelopeBatchAccepted) and accepted.data.total_jobs == 2
            job_id = accepted.data.jobs[1].job_id
            status = (await generated.op("get_status").asyncio_detailed(job_id, client=c)).parsed
            assert isinstance(status, models.EnvelopeJobView)
            assert status.data.job_id == job_id and status.data.status.value == "queued"
            batch_id = accepted.data.batch_id
            batch = (await generated.op("get_batch").asyncio_detailed(batch_id, client=c)).parsed
            assert [j.job_id for j in batch.data.jobs] == [j.job_id for j in accepted.data.jobs]
            bad = (await generated.op("get_status").asyncio_detailed("not-an-id", client=c)).parsed
            assert isinstance(bad, models.ErrorEnvelope)
            assert bad.error.code == models.ApiErrorCode.INVALID_JOB_ID
            pending = (await generated.op("get_download").asyncio_detailed(job_id, client=c)).parsed
            assert pending.error.code == models.ApiErrorCode.JOB_NOT_COMPLETED
