"""Tracing: a referral's decision is one trace from the HTTP request through the update and the activity to its SQL."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from temporalio.client import Client
from temporalio.worker import Replayer

from api.app import create_app
from runtime.temporal import data_converter
from runtime.tracing import Tracing, tracing_requested
from tests.api_fixtures import As, authenticator, reviewed_referral, tokens  # noqa: F401
from tests.conftest import SIGNING, TEST_KEYRING, make_worker
from tests.helpers import seeded
from tests.audit_helpers import HISTORIES_CONVERTER
from tests.test_audit_replay import all_histories
from worker import WORKFLOWS


@pytest.fixture
def traced() -> Iterator[tuple[Tracing, InMemorySpanExporter]]:
    """Tracing as production sets it up, its spans kept in memory; asyncpg is instrumented only for the test."""
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    tracing = Tracing(provider)
    tracing.instrument_database()
    yield tracing, exported
    tracing.stop_instrumenting_database()
    provider.shutdown()


def ancestry(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    """The names of a span's parents, nearest first, as far as they were exported."""
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


async def test_a_decision_is_one_trace_from_the_request_to_the_sql(
    traced, dev_env, pool, settings, sla_policy, authenticator, tokens, task_queue
):
    tracing, exported = traced
    client = await Client.connect(
        dev_env.client.service_client.config.target_host,
        data_converter=data_converter(keyring=TEST_KEYRING),
        interceptors=[tracing.temporal_interceptor(), SIGNING],
    )
    here = settings.model_copy(update={"task_queue": task_queue})
    app = create_app(client, pool, here, authenticator=authenticator, sla_policy=sla_policy, tracing=tracing)
    auth = As(tokens)
    async with (
        make_worker(client, pool, settings, task_queue),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test", timeout=60) as api,
    ):
        reference = await reviewed_referral(api, auth, client, pool, seeded("tracing"))

    spans = exported.get_finished_spans()
    requests = [
        s for s in spans
        if s.kind is SpanKind.SERVER and s.attributes.get("http.route") == "/referrals/{reference}/supervisor-review"
    ]
    assert len(requests) == 1
    trace = [s for s in spans if s.context.trace_id == requests[0].context.trace_id]
    by_id = {s.context.span_id: s for s in trace}
    names = {s.name for s in trace}
    # The API's span, the update as the client sent it and as the workflow validated and handled it.
    assert {"StartWorkflowUpdate:review", "ValidateUpdate:review", "HandleUpdate:review"} <= names
    # The decision's facts recorded by the activity the decision awaited, down to the SQL that wrote them.
    recording = [s for s in trace if s.name == "RunActivity:record_facts"]
    assert len(recording) == 1
    assert ancestry(recording[0], by_id)[-1] == requests[0].name
    statements = [s for s in trace if s.attributes.get("db.system") in ("postgresql", "postgres")]
    writes = [s for s in statements if "INSERT INTO referral_events" in str(s.attributes.get("db.statement", ""))]
    assert writes and all("RunActivity:record_facts" in ancestry(s, by_id) for s in writes)
    # Spans name the referral by its reference and never carry a submitted value.
    assert any(s.attributes.get("temporalWorkflowID") == reference for s in trace)
    assert not [s for s in statements if "db.statement.parameters" in s.attributes]


async def test_recorded_histories_replay_under_the_tracing_interceptor(traced):
    # Tracing adds spans and headers, never a command: every recorded history replays with it on.
    tracing, exported = traced
    replayer = Replayer(
        workflows=list(WORKFLOWS), data_converter=HISTORIES_CONVERTER, interceptors=[tracing.temporal_interceptor()]
    )
    for history in all_histories():
        await replayer.replay_workflow(history)


@pytest.mark.parametrize(
    ("environ", "requested"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_tracing_is_off_unless_the_otel_variables_ask_for_it(environ, requested):
    assert tracing_requested(environ) is requested
