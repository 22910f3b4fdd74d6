"""One escalating call, traced: the spans and metrics it exports, printed as a tree.

Run it offline (no keys, no collector): ``python examples/tracing.py``. It starts
escalate's local provider server and scripts the cheap model to answer 429 (with
Retry-After) and then an answer that a gate rejects; the strong model answers. The
OpenTelemetry SDK exports into memory, and the script prints what a collector would get,
after the call log's record of the same call.
In production, configure a real exporter instead (see ``docs/tracing.md``).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

import escalate.tracing
from escalate import Retry, Tier, escalating
from escalate.gates import GateContext, Rejected
from escalate.testing import Fault, ProviderServer, Reply

exporter = InMemorySpanExporter()
reader = InMemoryMetricReader()


def start_tracing() -> None:
    """What an application does once at start-up (with a real exporter, in production)."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))


class Invoice(BaseModel):
    customer: str
    total: float


def positive_total(invoice: Invoice, context: GateContext) -> None:
    if invoice.total <= 0:
        raise Rejected(f"the total {invoice.total} is not positive")


def show(span: ReadableSpan, spans: list[ReadableSpan], depth: int = 0) -> None:
    pad = "  " * depth
    assert span.start_time is not None and span.end_time is not None
    took = (span.end_time - span.start_time) / 1e6
    status = span.status.status_code.name
    print(f"{pad}{span.name}  [{span.kind.name}, {took:.1f} ms, status {status}]")
    for key, value in (span.attributes or {}).items():
        print(f"{pad}    {key} = {value!r}")
    for event in span.events:
        offset = (event.timestamp - span.start_time) / 1e6
        print(f"{pad}    event {event.name} at +{offset:.1f} ms")
        for key, value in (event.attributes or {}).items():
            print(f"{pad}        {key} = {value!r}")
    for child in spans:
        if child.parent is not None and child.parent.span_id == span.context.span_id:
            show(child, spans, depth + 1)


SHOWN = {
    "gen_ai.token.type",
    "gen_ai.request.model",
    "error.type",
    "escalate.trigger",
    "escalate.gate",
    "escalate.outcome",
}


def show_metrics() -> None:
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value: Any = getattr(point, "value", None)
                    if value is None:
                        value = f"count {point.count}, sum {point.sum:.6g}"  # type: ignore[union-attr]
                    attributes = dict(point.attributes or {})
                    picked = {k: v for k, v in attributes.items() if k in SHOWN}
                    print(f"  {metric.name} {picked}: {value}")


def main() -> None:
    with ProviderServer() as server:

        @escalating(
            tiers=[
                Tier("openai/gpt-4o-mini", base_url=server.openai_base_url, api_key="sk-demo"),
                Tier("openai/gpt-4o", base_url=server.openai_base_url, api_key="sk-demo"),
            ],
            response_model=Invoice,
            gates=[positive_total],
            retry=Retry(attempts=3, initial=0.01, max=0.1, jitter=0),
        )
        def extract_invoice(text: str) -> str:
            return f"Extract the invoice in: {text}"

        # A first, untraced call loads the SDKs (and their error path) and builds the
        # clients, so the traced call below shows what a call costs in a running process.
        server.script(
            "gpt-4o-mini", Fault(429, retry_after=0), Reply(data={"customer": "A", "total": 1})
        )
        extract_invoice("warm-up")
        start_tracing()
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logging.getLogger("escalate").addHandler(handler)
        escalate.tracing.log_calls(logging.WARNING)  # and the call log, for comparison
        server.script("gpt-4o-mini", Fault(429, retry_after=0.05))
        server.script("gpt-4o-mini", Reply(data={"customer": "ACME", "total": -12.5}))
        server.script("gpt-4o", Reply(data={"customer": "ACME", "total": 12.5}))
        extract_invoice("ACME owes 12.50")
    print()
    spans = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time or 0)
    for root in (s for s in spans if s.parent is None):
        show(root, spans)
    print()
    print("metrics:")
    show_metrics()


if __name__ == "__main__":
    main()
