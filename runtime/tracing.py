"""Tracing with OpenTelemetry: an HTTP request, the workflow update it sends, the activities it schedules and their SQL, as one trace.

Off unless the standard variables ask for it: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, or `OTEL_TRACES_EXPORTER=otlp`; `OTEL_SDK_DISABLED=true`
or `OTEL_TRACES_EXPORTER=none` keeps it off. The exporter (OTLP over HTTP) reads the rest of
the `OTEL_*` variables itself: headers, timeout, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_TRACES_SAMPLER`. Spans carry identifiers (references, workflow and run IDs, routes, SQL
with its placeholders) and never a payload, a query parameter's value or a SQL parameter.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from typing import Any

import opentelemetry.trace
import temporalio.worker
from opentelemetry.context import Context
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from temporalio.contrib.opentelemetry import TracingInterceptor, TracingWorkflowInboundInterceptor

# The SDK's own attach/detach, safe when a workflow's context is finalised elsewhere (pinned SDK version).
from temporalio.contrib.opentelemetry._context import attached_context

# Probes and scrapes would drown the traces that matter.
UNTRACED_ROUTES = "health,ready,metrics"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the `OTEL_*` variables ask for traces to be exported (by default they are not)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return exporter == "otlp" or any(environ.get(name) for name in ENDPOINT_VARIABLES)


class DecisionTracing(TracingInterceptor):
    """Temporal's tracing interceptor, with a human decision's handling in the trace of the request that sent it.

    By default a workflow's spans all join the trace of its start, an update's merely linked to
    its caller; here an update's validation and handling, and every activity scheduled while it is
    in flight (the outbox's recording above all, which the decision awaits), are children of the
    caller's span. Only span parents and Temporal headers differ: no command does.
    """

    def workflow_interceptor_class(
        self, input: temporalio.worker.WorkflowInterceptorClassInput
    ) -> type[TracingWorkflowInboundInterceptor]:
        super().workflow_interceptor_class(input)
        return DecisionTracingInbound


class DecisionTracingInbound(TracingWorkflowInboundInterceptor):
    """The workflow side of DecisionTracing: the contexts of the updates in flight, most recent last."""

    def __init__(self, next: temporalio.worker.WorkflowInboundInterceptor) -> None:
        super().__init__(next)
        self.decisions: list[Context] = []

    def caller_context(self, input: temporalio.worker.HandleUpdateInput) -> Context | None:
        header = input.headers.get(self.header_key)
        if header is None:
            return None
        return self.text_map_propagator.extract(self.payload_converter.from_payloads([header])[0])

    def handle_update_validator(self, input: temporalio.worker.HandleUpdateInput) -> None:
        context = self.caller_context(input)
        if context is None:
            return super().handle_update_validator(input)
        with attached_context(context):
            self._completed_span(f"ValidateUpdate:{input.update}", kind=opentelemetry.trace.SpanKind.SERVER)
            self.next.handle_update_validator(input)

    async def handle_update_handler(self, input: temporalio.worker.HandleUpdateInput) -> Any:
        context = self.caller_context(input)
        if context is None:
            return await super().handle_update_handler(input)
        self.decisions.append(context)
        try:
            with attached_context(context):
                self._completed_span(f"HandleUpdate:{input.update}", kind=opentelemetry.trace.SpanKind.SERVER)
                return await self.next.handle_update_handler(input)
        finally:
            self.decisions.remove(context)

    def _completed_span(self, span_name: str, **kwargs: Any) -> None:
        """An activity scheduled while a decision is in flight (from its handler or the outbox) joins its trace."""
        joins = span_name.startswith("StartActivity:") and self.decisions
        with attached_context(self.decisions[-1] if joins else None):
            super()._completed_span(span_name, **kwargs)


class Tracing:
    """One process's tracer provider, and what it instruments: Temporal's client and worker, FastAPI, asyncpg."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider

    @classmethod
    def exporting(cls, service_name: str) -> Tracing:
        """Spans batched to the OTLP endpoint the environment names (`OTEL_SERVICE_NAME` wins over `service_name`)."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider = TracerProvider(
            resource=Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or service_name})
        )
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider)

    def temporal_interceptor(self) -> DecisionTracing:
        """On the client (the API's, the worker's): spans for starts, updates, workflow tasks and activities,
        their context carried in Temporal headers. It adds no command, so recorded histories replay unchanged."""
        return DecisionTracing(self.provider.get_tracer("temporalio"))

    def instrument_app(self, app: Any) -> None:
        FastAPIInstrumentor.instrument_app(app, tracer_provider=self.provider, excluded_urls=UNTRACED_ROUTES)

    def instrument_database(self) -> None:
        """Every asyncpg statement a span (process-wide: asyncpg's connection class is patched)."""
        AsyncPGInstrumentor().instrument(tracer_provider=self.provider)  # parameters are never captured by default

    def stop_instrumenting_database(self) -> None:
        AsyncPGInstrumentor().uninstrument()

    def shutdown(self) -> None:
        """Export what is batched, then stop."""
        self.provider.shutdown()


@cache
def process_tracing(service_name: str) -> Tracing | None:
    """This process's tracing, made once and its database instrumented, when the environment asks for it."""
    if not tracing_requested():
        return None
    tracing = Tracing.exporting(service_name)
    tracing.instrument_database()
    return tracing
