"""OpenTelemetry spans and metrics of escalating calls, and the call log.

Real openai/anthropic SDKs and instructor over real HTTP against the local provider
server, the real OpenTelemetry SDK with its in-memory span exporter and metric reader,
every test through the sync and the async face.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx2
import openai
import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once
from pydantic import BaseModel

import escalate.tracing
from escalate import (
    AllTiersFailed,
    Attempt,
    Breaker,
    Receipt,
    Retry,
    Route,
    Tier,
    escalating,
    receipt_of,
)
from escalate._tracing import begin
from escalate.gates import GateContext, Rejected
from escalate.testing import ManualClock, breakers
from escalate.testing._server import Fault, ProviderServer, Reply

from .conftest import FAST_RETRY, KEY


class Invoice(BaseModel):
    customer: str
    total: float


GOOD = {"customer": "ACME", "total": 12.5}
NEGATIVE = {"customer": "ACME", "total": -3.0}  # parses; the gate rejects it
BAD = {"customer": "ACME"}  # total missing: a validation failure


def positive_total(invoice: Invoice, context: GateContext) -> float:
    if invoice.total <= 0:
        raise Rejected(f"the total {invoice.total} is not positive")
    return 1.0


def _reset_otel_globals() -> None:
    # The API lets a process set its global providers once; each test sets its own.
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    import opentelemetry.metrics._internal as internal

    internal._METER_PROVIDER_SET_ONCE = Once()
    internal._METER_PROVIDER = None


class Otel:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(
            resource=Resource.create({"service.name": "escalate-tests"})
        )
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def spans(self) -> list[ReadableSpan]:
        """escalate's spans, by start time."""
        return [s for s in self.all_spans() if s.instrumentation_scope.name == "escalate"]

    def all_spans(self) -> list[ReadableSpan]:
        """Every span: escalate's and the SDKs' own (the anthropic SDK traces its calls)."""
        return sorted(self.exporter.get_finished_spans(), key=lambda s: s.start_time or 0)

    def call_span(self) -> ReadableSpan:
        (root,) = [s for s in self.spans() if s.parent is None]
        return root

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        return [
            s
            for s in self.spans()
            if s.parent is not None and s.parent.span_id == parent.context.span_id
        ]

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found


@pytest.fixture
def otel() -> Iterator[Otel]:
    """Global tracer and meter providers of the OpenTelemetry SDK, as a user sets them."""
    _reset_otel_globals()
    recorded = Otel()
    trace.set_tracer_provider(recorded.tracer_provider)
    metrics.set_meter_provider(recorded.meter_provider)
    yield recorded
    _reset_otel_globals()
    escalate.tracing.configure()


@pytest.fixture(params=["openai", "anthropic"])
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def tiers(provider: str, openai_tier: Any, anthropic_tier: Any) -> list[Tier]:
    if provider == "openai":
        return [openai_tier("gpt-4o-mini"), openai_tier("gpt-4o")]
    return [anthropic_tier("claude-haiku-4-5"), anthropic_tier("claude-sonnet-4-5")]


def model(tier: Tier) -> str:
    return tier.model.partition("/")[2]


def _escalating_call(
    build: Any, server: ProviderServer, tiers: list[Tier], **kwargs: Any
) -> Receipt:
    """A 429 retried after Retry-After, a gate rejection, an escalation, an answer."""
    server.script(model(tiers[0]), Fault(429, retry_after=0.01), Reply(data=NEGATIVE))
    server.script(model(tiers[1]), Reply(data=GOOD))
    extract = build(tiers=tiers, response_model=Invoice, gates=[positive_total], **kwargs)
    return receipt_of(extract("ACME owes 12.50"))


def test_an_escalating_call_is_one_span_with_a_child_per_request(
    otel: Otel, build: Any, server: ProviderServer, tiers: list[Tier], provider: str
) -> None:
    receipt = _escalating_call(build, server, tiers)

    call = otel.call_span()
    attempts = otel.children(call)
    assert len(otel.spans()) == 4 and len(attempts) == 3
    assert {s.context.trace_id for s in otel.all_spans()} == {call.context.trace_id}
    # An SDK's own spans nest under the request's span (the anthropic SDK makes one).
    for span in otel.all_spans():
        if span.instrumentation_scope.name != "escalate":
            assert span.parent is not None
            assert span.parent.span_id in {a.context.span_id for a in attempts}
    assert call.name == f"invoke_workflow {receipt.function}" and call.kind == SpanKind.INTERNAL
    cheap, strong = model(tiers[0]), model(tiers[1])
    assert [s.name for s in attempts] == [f"chat {cheap}", f"chat {cheap}", f"chat {strong}"]
    assert all(s.kind == SpanKind.CLIENT for s in attempts)
    # The call span covers its requests; each request's span covers its request.
    assert call.start_time is not None and call.end_time is not None
    for span, attempt in zip(attempts, receipt.attempts, strict=True):
        assert span.start_time is not None and span.end_time is not None
        assert call.start_time <= span.start_time <= span.end_time <= call.end_time
        assert (span.end_time - span.start_time) / 1e9 >= attempt.latency_s * 0.5

    limited, rejected, answered = (dict(s.attributes or {}) for s in attempts)
    first, second, third = receipt.attempts
    for attributes, attempt in zip((limited, rejected, answered), receipt.attempts, strict=True):
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.provider.name"] == provider
        assert attributes["gen_ai.request.model"] == attempt.requested_model
        assert attributes["escalate.tier"] == attempt.tier
        assert attributes["escalate.deployment"] == attempt.deployment
        assert attributes["escalate.purpose"] == attempt.purpose
        assert attributes["escalate.outcome"] == attempt.outcome
        assert attributes["escalate.cost_usd"] == pytest.approx(float(attempt.cost_usd or 0))

    assert first.trigger == "rate_limit"
    assert limited["error.type"] == "429" and limited["http.response.status_code"] == 429
    assert limited["escalate.trigger"] == "rate_limit" and "429" in str(limited["escalate.reason"])
    assert "gen_ai.response.model" not in limited and "gen_ai.usage.input_tokens" not in limited
    assert attempts[0].status.status_code == StatusCode.ERROR

    assert (second.purpose, second.outcome, second.gate) == ("retry", "rejected", "positive_total")
    assert rejected["escalate.trigger"] == "gate" and rejected["escalate.gate"] == "positive_total"
    assert rejected["escalate.reason"] == second.reason and "not positive" in str(second.reason)
    assert "error.type" not in rejected and attempts[1].status.status_code == StatusCode.UNSET
    for attributes, attempt in ((rejected, second), (answered, third)):
        assert attributes["gen_ai.response.model"] == attempt.served_model
        assert attributes["gen_ai.usage.input_tokens"] == attempt.input_tokens
        assert attributes["gen_ai.usage.output_tokens"] == attempt.output_tokens
        assert attributes["gen_ai.usage.cache_read.input_tokens"] == attempt.cached_tokens
        assert attributes["gen_ai.response.finish_reasons"] == (
            "tool_calls" if provider == "openai" else "tool_use",
        )
        assert attributes["escalate.cost_source"] == attempt.cost_source == "genai-prices"
    assert answered["escalate.outcome"] == "answered" and answered["escalate.purpose"] == "answer"
    assert answered["escalate.score.positive_total"] == 1.0

    facts = dict(call.attributes or {})
    assert facts["gen_ai.operation.name"] == "invoke_workflow"
    assert facts["escalate.receipt_id"] == receipt.id
    assert facts["escalate.outcome"] == "answered" and facts["escalate.escalated"] is True
    assert facts["escalate.answered_by"] == tiers[1].display_name
    assert facts["escalate.cost_usd"] == pytest.approx(float(receipt.cost_usd or 0))
    assert facts["escalate.cost_sources"] == ("genai-prices",)
    assert facts["escalate.tiers_tried"] == receipt.tiers_tried
    assert facts["escalate.attempts"] == 3
    assert "gen_ai.usage.input_tokens" not in facts  # summed by backends from the requests
    assert call.status.status_code == StatusCode.UNSET

    events = {e.name: dict(e.attributes or {}) for e in call.events}
    verdicts = [dict(e.attributes or {}) for e in call.events if e.name == "escalate.gate_verdict"]
    assert [v["escalate.verdict"] for v in verdicts] == ["rejected", "passed"]
    assert verdicts[0]["escalate.gate"] == "positive_total"
    assert verdicts[0]["escalate.tier"] == tiers[0].display_name
    (move,) = receipt.escalations
    up = events["escalate.escalated"]
    assert (up["escalate.from_tier"], up["escalate.to_tier"]) == (move.from_tier, move.to_tier)
    assert (up["escalate.trigger"], up["escalate.gate"]) == ("gate", "positive_total")
    (moved,) = [e for e in call.events if e.name == "escalate.escalated"]
    assert attempts[1].end_time is not None and attempts[2].start_time is not None
    assert attempts[1].end_time <= moved.timestamp <= attempts[2].start_time


def test_metrics_equal_the_receipt(
    otel: Otel, build: Any, server: ProviderServer, tiers: list[Tier], provider: str
) -> None:
    receipt = _escalating_call(build, server, tiers)

    tokens = otel.points("gen_ai.client.token.usage")
    by_type: dict[str, int] = {}
    for point in tokens:
        assert point.attributes["gen_ai.provider.name"] == provider
        kind = point.attributes["gen_ai.token.type"]
        by_type[kind] = by_type.get(kind, 0) + point.sum
    assert by_type == {"input": receipt.input_tokens, "output": receipt.output_tokens}
    per_model = {
        (p.attributes["gen_ai.response.model"], p.attributes["gen_ai.token.type"]): p.sum
        for p in tokens
    }
    assert (
        per_model[(receipt.attempts[2].served_model, "input")] == receipt.attempts[2].input_tokens
    )

    durations = otel.points("gen_ai.client.operation.duration")
    assert sum(p.count for p in durations) == 3
    assert sum(p.sum for p in durations) == pytest.approx(
        sum(a.latency_s for a in receipt.attempts)
    )
    (failed,) = [p for p in durations if "error.type" in p.attributes]
    assert failed.attributes["error.type"] == "429" and failed.count == 1

    (calls,) = otel.points("escalate.calls")
    assert calls.value == 1
    assert calls.attributes["escalate.function"] == receipt.function
    assert calls.attributes["escalate.outcome"] == "answered"
    assert calls.attributes["escalate.escalated"] is True
    (escalations,) = otel.points("escalate.escalations")
    assert escalations.value == 1
    assert escalations.attributes["escalate.trigger"] == "gate"
    assert escalations.attributes["escalate.gate"] == "positive_total"
    cost = sum(p.value for p in otel.points("escalate.cost"))
    assert cost == pytest.approx(float(receipt.known_cost_usd)) and cost > 0


def test_metrics_add_up_over_calls(otel: Otel, build: Any, server: ProviderServer) -> None:
    tier = Tier("openai/gpt-4o-mini", base_url=server.openai_base_url, api_key=KEY)
    server.script("gpt-4o-mini", Reply(data=GOOD), Reply(data=GOOD))
    extract = build(tiers=[tier], response_model=Invoice)

    receipts = [receipt_of(extract("a")), receipt_of(extract("b"))]

    (calls,) = otel.points("escalate.calls")
    assert calls.value == 2 and calls.attributes["escalate.escalated"] is False
    assert otel.points("escalate.escalations") == []
    cost = sum(p.value for p in otel.points("escalate.cost"))
    assert cost == pytest.approx(sum(float(r.known_cost_usd) for r in receipts))


def test_the_request_span_is_current_while_the_http_request_runs(
    otel: Otel, face: str, server: ProviderServer
) -> None:
    """What an instrumented HTTP client or SDK would do: start a span in the request."""
    tracer = otel.tracer_provider.get_tracer("an-http-instrumentation")

    def on_request(request: Any) -> None:
        tracer.start_span(f"POST {request.url.path}").end()

    async def on_request_async(request: Any) -> None:
        on_request(request)

    server.script("gpt-4o-mini", Fault(500), Reply(data=GOOD))
    base = server.openai_base_url
    if face == "sync":
        http = httpx2.Client(event_hooks={"request": [on_request]})
        client: Any = openai.OpenAI(base_url=base, api_key=KEY, http_client=http)

        @escalating(tiers=[Tier("openai/gpt-4o-mini", client=client)], response_model=Invoice)
        def extract(text: str) -> str:
            return text

        run: Callable[[], Any] = lambda: extract("x")  # noqa: E731
    else:

        async def go() -> Any:
            http = httpx2.AsyncClient(event_hooks={"request": [on_request_async]})
            client = openai.AsyncOpenAI(base_url=base, api_key=KEY, http_client=http)

            @escalating(
                tiers=[Tier("openai/gpt-4o-mini", client=client)],
                response_model=Invoice,
                retry=FAST_RETRY,
            )
            async def extract(text: str) -> str:
                return text

            return await extract("x")

        run = lambda: asyncio.run(go())  # noqa: E731
    receipt_of(run())

    attempts = [s for s in otel.spans() if s.name.startswith("chat ")]
    posts = [s for s in otel.all_spans() if s.name.startswith("POST ")]
    assert len(attempts) == 2 and len(posts) == 2
    for attempt, post in zip(attempts, posts, strict=True):
        assert post.parent is not None and post.parent.span_id == attempt.context.span_id


def test_reasks_inside_one_step_are_child_spans_of_the_step(
    otel: Otel, build: Any, server: ProviderServer, openai_tier: Any
) -> None:
    server.script(
        "gpt-4o-mini",
        Reply(data=BAD, input_tokens=100, output_tokens=10),
        Reply(data=GOOD, input_tokens=150, output_tokens=12),
    )
    extract = build(tiers=[openai_tier("gpt-4o-mini", max_reasks=1)], response_model=Invoice)

    receipt = receipt_of(extract("doc"))

    (step,) = otel.children(otel.call_span())
    requests = otel.children(step)
    assert step.name == "chat gpt-4o-mini" and dict(step.attributes or {})["escalate.requests"] == 2
    assert "gen_ai.usage.input_tokens" not in dict(step.attributes or {})  # counted once
    assert [dict(s.attributes or {})["gen_ai.usage.input_tokens"] for s in requests] == [100, 150]
    assert [dict(s.attributes or {})["escalate.outcome"] for s in requests] == [
        "rejected",
        "answered",
    ]
    assert [dict(s.attributes or {})["escalate.purpose"] for s in requests] == ["answer", "reask"]
    for span, attempt in zip(requests, receipt.attempts, strict=True):
        assert span.start_time is not None and span.end_time is not None
        assert (span.end_time - span.start_time) / 1e9 == pytest.approx(attempt.latency_s, abs=1e-6)
    tokens = otel.points("gen_ai.client.token.usage")
    assert sum(p.sum for p in tokens if p.attributes["gen_ai.token.type"] == "input") == 250


def test_a_failed_call_is_an_error_span(
    otel: Otel, build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script(model(tiers[0]), Reply(data=BAD))
    server.script(model(tiers[1]), Reply(data=BAD))
    extract = build(tiers=tiers, response_model=Invoice)

    with pytest.raises(AllTiersFailed) as failed:
        extract("doc")

    call = otel.call_span()
    facts = dict(call.attributes or {})
    assert call.status.status_code == StatusCode.ERROR
    assert facts["error.type"] == "AllTiersFailed" and facts["escalate.outcome"] == "failed"
    assert facts["escalate.receipt_id"] == receipt_of(failed.value).id
    assert "escalate.answered_by" not in facts
    assert [dict(s.attributes or {})["escalate.trigger"] for s in otel.children(call)] == [
        "validation",
        "validation",
    ]
    (calls,) = otel.points("escalate.calls")
    assert calls.attributes["escalate.outcome"] == "failed"


def test_sideways_moves_are_events(
    otel: Otel, build: Any, server: ProviderServer, openai_tier: Any
) -> None:
    primary = openai_tier("gpt-4o-mini", fallbacks=[openai_tier("gpt-4.1-mini")])
    server.script("gpt-4o-mini", Fault(503), Fault(503), Fault(503))
    server.script("gpt-4.1-mini", Reply(data=GOOD))
    extract = build(tiers=[primary], response_model=Invoice)

    receipt = receipt_of(extract("doc"))

    (moved,) = [e for e in otel.call_span().events if e.name == "escalate.moved_sideways"]
    (move,) = receipt.moves
    attributes = dict(moved.attributes or {})
    assert attributes["escalate.from_deployment"] == move.from_deployment == "openai/gpt-4o-mini"
    assert attributes["escalate.to_deployment"] == move.to_deployment == "openai/gpt-4.1-mini"
    assert attributes["escalate.trigger"] == "server_error"
    assert [dict(s.attributes or {})["escalate.deployment"] for s in otel.spans()[1:]] == [
        *["openai/gpt-4o-mini"] * 3,
        "openai/gpt-4.1-mini",
    ]
    assert dict(otel.call_span().attributes or {})["escalate.escalated"] is False


def _everything_exported(otel: Otel) -> str:
    parts = []
    for span in otel.exporter.get_finished_spans():
        parts.append(span.name)
        parts.append(json.dumps(dict(span.attributes or {}), default=str))
        parts.append(json.dumps(dict(span.resource.attributes), default=str))
        parts.append(str(span.status.description))
        for event in span.events:
            parts.append(event.name + json.dumps(dict(event.attributes or {}), default=str))
    data = otel.reader.get_metrics_data()
    parts.append(data.to_json() if data else "")
    return "\n".join(parts)


@pytest.mark.parametrize("content", [False, True])
def test_no_key_reaches_any_attribute_event_resource_or_metric(
    otel: Otel,
    build: Any,
    server: ProviderServer,
    tiers: list[Tier],
    monkeypatch: pytest.MonkeyPatch,
    content: bool,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    escalate.tracing.configure(record_content=content)
    assert all(t.api_key == KEY for t in tiers)

    _escalating_call(build, server, tiers)

    exported = _everything_exported(otel)
    assert "positive_total" in exported and ("ACME owes" in exported) is content
    assert KEY not in exported and KEY[-8:] not in exported
    assert any(KEY in str(r.headers) for r in server.requests)  # the key was sent


def test_message_content_only_when_opted_in(
    otel: Otel,
    build: Any,
    server: ProviderServer,
    openai_tier: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    extract = build(tiers=[openai_tier()], response_model=Invoice)
    server.script("gpt-4o-mini", Reply(data=GOOD), Reply(data=GOOD), Reply(data=GOOD))

    extract("ACME owes 12.50")
    (span,) = [s for s in otel.spans() if s.name.startswith("chat ")]
    assert not {"gen_ai.input.messages", "gen_ai.output.messages"} & set(span.attributes or {})

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    otel.exporter.clear()
    extract("ACME owes 12.50")
    (span,) = [s for s in otel.spans() if s.name.startswith("chat ")]
    attributes = dict(span.attributes or {})
    (sent,) = json.loads(str(attributes["gen_ai.input.messages"]))
    assert sent["role"] == "user" and "ACME owes 12.50" in sent["parts"][0]["content"]
    (said,) = json.loads(str(attributes["gen_ai.output.messages"]))
    assert said["role"] == "assistant" and json.loads(said["parts"][0]["content"]) == GOOD

    escalate.tracing.configure(record_content=False)  # the setting wins over the variable
    otel.exporter.clear()
    extract("ACME owes 12.50")
    (span,) = [s for s in otel.spans() if s.name.startswith("chat ")]
    assert "gen_ai.input.messages" not in (span.attributes or {})


def test_nothing_is_recorded_when_tracing_is_off(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    """No provider set (the API's default): no trace object, no span, no metric."""
    _reset_otel_globals()
    unused = Otel()  # an SDK that nobody configured as escalate's or the global one
    assert begin("any.function") is None

    receipt = _escalating_call(build, server, tiers)

    assert receipt.escalated and receipt.answered_by == tiers[1].display_name
    assert unused.exporter.get_finished_spans() == ()
    assert unused.points("escalate.calls") == []


def test_providers_given_to_configure(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    _reset_otel_globals()
    given = Otel()
    escalate.tracing.configure(
        tracer_provider=given.tracer_provider, meter_provider=given.meter_provider
    )
    try:
        receipt = _escalating_call(build, server, tiers)
    finally:
        escalate.tracing.configure()

    assert dict(given.call_span().attributes or {})["escalate.receipt_id"] == receipt.id
    (calls,) = given.points("escalate.calls")
    assert calls.value == 1
    assert begin("any.function") is None  # back to the (unset) global providers


def test_only_metrics_configured(build: Any, server: ProviderServer, tiers: list[Tier]) -> None:
    _reset_otel_globals()
    given = Otel()
    metrics.set_meter_provider(given.meter_provider)
    try:
        receipt = _escalating_call(build, server, tiers)
    finally:
        _reset_otel_globals()

    assert given.exporter.get_finished_spans() == ()
    cost = sum(p.value for p in given.points("escalate.cost"))
    assert cost == pytest.approx(float(receipt.known_cost_usd))


class _Broken(SpanProcessor):
    def on_start(self, span: Any, parent_context: Any = None) -> None:
        raise RuntimeError("a broken span processor")

    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("a broken span processor")


def test_a_broken_tracing_setup_never_breaks_a_call(
    otel: Otel, build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    otel.tracer_provider.add_span_processor(_Broken())

    receipt = _escalating_call(build, server, tiers)

    assert receipt.outcome == "answered" and receipt.escalated


# --- the call log --------------------------------------------------------------------------


def test_call_log_one_record_per_call(
    build: Any, server: ProviderServer, tiers: list[Tier], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="escalate")
    server.script(
        model(tiers[0]), Reply(data=GOOD), Reply(data=GOOD), Reply(data=BAD), Reply(data=GOOD)
    )
    server.script(model(tiers[1]), Reply(data=GOOD))
    extract = build(tiers=tiers, response_model=Invoice)

    extract("off by default")
    assert [r for r in caplog.records if hasattr(r, "escalate_receipt_id")] == []

    escalate.tracing.log_calls(logging.WARNING)
    try:
        first = receipt_of(extract("one"))
        second = receipt_of(extract("two"))
    finally:
        escalate.tracing.log_calls(None)
    extract("off again")

    records = [r for r in caplog.records if hasattr(r, "escalate_receipt_id")]
    assert len(records) == 2 and all(r.levelno == logging.WARNING for r in records)
    assert all(r.name == "escalate" for r in records)
    one, two = records
    assert one.escalate_receipt_id == first.id and two.escalate_receipt_id == second.id
    assert one.escalate_function == first.function and one.escalate_outcome == "answered"
    assert one.escalate_path == [tiers[0].display_name] and one.escalate_escalated is False
    assert two.escalate_path == [t.display_name for t in tiers] and two.escalate_escalated is True
    assert two.escalate_answered_by == tiers[1].display_name and two.escalate_attempts == 2
    assert two.escalate_cost_usd == pytest.approx(float(second.cost_usd or 0))
    assert two.escalate_latency_s == second.latency_s
    assert second.id in two.getMessage() and second.summary() in two.getMessage()


def test_call_log_records_failed_calls_too(
    build: Any, server: ProviderServer, tiers: list[Tier], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="escalate")
    server.script(model(tiers[0]), Reply(data=BAD))
    server.script(model(tiers[1]), Reply(data=BAD))
    extract = build(tiers=tiers, response_model=Invoice)
    escalate.tracing.log_calls(logging.INFO)
    try:
        with pytest.raises(AllTiersFailed) as failed:
            extract("doc")
    finally:
        escalate.tracing.log_calls(None)

    (record,) = [r for r in caplog.records if hasattr(r, "escalate_receipt_id")]
    assert record.escalate_outcome == "failed" and record.escalate_answered_by is None
    assert record.escalate_receipt_id == receipt_of(failed.value).id


def test_call_log_level_is_checked() -> None:
    with pytest.raises(TypeError, match="logging level"):
        escalate.tracing.log_calls("INFO")  # type: ignore[arg-type]


# --- imports ---------------------------------------------------------------------------------


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_escalate_imports_no_opentelemetry() -> None:
    out = _python(
        """
        import sys
        import escalate, escalate.tracing
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
        """
    )
    assert out.strip() == "[]"


def test_calls_run_without_opentelemetry_installed() -> None:
    out = _python(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if opentelemetry-api were not installed
        from pydantic import BaseModel
        from escalate import escalating, receipt_of
        from escalate.testing import ScriptedTier

        class Answer(BaseModel):
            total: int

        tiers = [ScriptedTier("cheap", {"total": "x"}), ScriptedTier("strong", {"total": 3})]

        @escalating(tiers=tiers, response_model=Answer)
        def f(text: str) -> str:
            return text

        print(receipt_of(f("q")).answered_by, f.__name__)
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry.")))
        """
    )
    assert out.split() == ["strong", "f", "[]"]


def test_breaker_skips_are_events_not_request_spans(otel: Otel) -> None:
    """A deployment an open circuit breaker skipped made no request: an event on the call
    span at the moment of the skip, and no request span or request metric."""
    started = datetime.now(UTC)
    skipped = Attempt(
        tier="cheap",
        deployment="openai/gpt-4o-mini",
        provider="openai",
        requested_model="gpt-4o-mini",
        outcome="skipped",
        trigger="breaker",
        reason="skipped: circuit breaker open",
        cost_usd=Decimal(0),
        started_at=started,
    )
    receipt = Receipt(
        function="tests.f",
        outcome="failed",
        answered_by=None,
        route=Route(start_tier="cheap"),
        attempts=(skipped,),
        started_at=started,
        finished_at=started,
        latency_s=0.0,
    )
    traced = begin("tests.f")
    assert traced is not None

    traced.finish(receipt)

    (call,) = otel.spans()
    (event,) = call.events
    assert event.name == "escalate.breaker_skip"
    assert dict(event.attributes or {}) == {
        "escalate.tier": "cheap",
        "escalate.deployment": "openai/gpt-4o-mini",
        "escalate.trigger": "breaker",
        "escalate.reason": "skipped: circuit breaker open",
    }
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert event.timestamp == (started - epoch) // timedelta(microseconds=1) * 1000
    assert otel.points("gen_ai.client.operation.duration") == []
    (calls,) = otel.points("escalate.calls")
    assert calls.attributes["escalate.outcome"] == "failed"


def test_a_provider_set_after_the_first_call_is_used() -> None:
    _reset_otel_globals()
    assert begin("any.function") is None  # the API loaded, nothing set
    later = Otel()
    trace.set_tracer_provider(later.tracer_provider)
    try:
        traced = begin("any.function")
        assert traced is not None and traced.instruments is None  # traces only
        traced.finish(None)
    finally:
        _reset_otel_globals()
    (span,) = later.spans()
    assert span.name == "invoke_workflow any.function"
    assert span.status.status_code == StatusCode.ERROR  # ended before any request


def test_a_cancelled_call_ends_its_spans(
    otel: Otel, server: ProviderServer, openai_tier: Any
) -> None:
    server.script("gpt-4o-mini", Reply(data=GOOD, delay=2.0))

    @escalating(tiers=[openai_tier()], response_model=Invoice)
    async def extract(text: str) -> str:
        return text

    async def go() -> None:
        await asyncio.wait_for(extract("doc"), timeout=0.5)

    with pytest.raises(TimeoutError):
        asyncio.run(go())

    call = otel.call_span()
    (request,) = otel.children(call)
    assert dict(request.attributes or {})["error.type"] == "cancelled"
    assert request.status.status_code == StatusCode.ERROR
    facts = dict(call.attributes or {})
    assert facts["escalate.outcome"] == "cancelled" and facts["error.type"] == "CancelledError"
    assert call.status.status_code == StatusCode.ERROR
    (calls,) = otel.points("escalate.calls")
    assert calls.attributes["escalate.outcome"] == "cancelled"


def test_an_open_breaker_is_a_skip_event_and_its_opening_an_event(
    otel: Otel, build: Any, server: ProviderServer, openai_tier: Any
) -> None:
    spare = openai_tier("gpt-4o-mini-eu", name="eu")
    tier = openai_tier("gpt-4o-mini", fallbacks=[spare], breaker=Breaker(failures=3, cooldown=30))
    server.script("gpt-4o-mini", Fault(503), Fault(503), Fault(503))
    server.script("gpt-4o-mini-eu", Reply(data=GOOD), Reply(data=GOOD))
    retry = Retry(attempts=3, initial=0, jitter=0)
    with breakers(clock=ManualClock(1000.0)):
        extract = build(tiers=[tier], response_model=Invoice, retry=retry)
        receipt_of(extract("opens it"))
        (opened,) = [e for e in otel.call_span().events if e.name == "escalate.breaker_opened"]
        assert dict(opened.attributes or {})["escalate.deployment"] == "openai/gpt-4o-mini"
        assert dict(opened.attributes or {})["escalate.failures"] == 3
        otel.exporter.clear()

        second = receipt_of(extract("skips it"))

    skipped, answered = second.attempts
    assert (skipped.outcome, answered.deployment) == ("skipped", "eu")
    call = otel.call_span()
    assert [dict(s.attributes or {})["escalate.deployment"] for s in otel.children(call)] == ["eu"]
    names = [e.name for e in call.events]
    assert names == ["escalate.breaker_skip", "escalate.moved_sideways"]
    skip = dict(call.events[0].attributes or {})
    assert skip["escalate.deployment"] == "openai/gpt-4o-mini"
    assert skip["escalate.trigger"] == "breaker" and skip["escalate.reason"] == skipped.reason
    assert dict(call.events[1].attributes or {})["escalate.trigger"] == "breaker"
    # 3 failures and an answer, then one answer: the skip made no request and records none.
    assert sum(p.count for p in otel.points("gen_ai.client.operation.duration")) == 5
