"""OpenTelemetry: every call a span, every request a child span, metrics from the receipt.

Nothing here imports ``opentelemetry`` until a call runs with it importable (checked once,
then cached), and ``import escalate`` never does. :func:`begin` is the one entry: it answers
``None`` (and costs a global lookup or two) unless a tracer provider or a meter provider
other than the API's default no-op one is configured, so a call with no SDK configured
builds no span, no event and no attribute.

What is recorded:

- the *call span* ``invoke_workflow {function}`` (INTERNAL), current for the whole walk,
  ended with the receipt's facts: its id, outcome, whether it escalated, the answering
  tier, the cost; moves, gate verdicts and breaker skips are events on it;
- one *attempt span* ``chat {model}`` (CLIENT) per request, current while the HTTP request
  runs (so an instrumented SDK or HTTP client nests its spans under it), carrying the GenAI
  semantic conventions and escalate's own facts under ``escalate.``. A step in which
  instructor re-asked makes several requests that escalate only learns of when the step
  returns: that step's span then holds one child span per request, placed after the fact
  at the request's own start and latency;
- the conventions' ``gen_ai.client.token.usage`` and ``gen_ai.client.operation.duration``
  histograms per attempt, and escalate's ``escalate.calls``, ``escalate.escalations`` and
  ``escalate.cost`` counters, all read from the receipt, so they agree with it.

Only receipt fields (already scrubbed of keys) and the step's messages (when content is
opted in) reach an attribute; no header, client or key is ever read. Every call into
OpenTelemetry is inside ``contextlib.suppress(Exception)``: tracing never breaks a call.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from escalate._providers import finish_reason
from escalate._receipt import Attempt, Receipt

if TYPE_CHECKING:
    from escalate._outcomes import TierCall
    from escalate._plan import Call, Check, Verdict

__all__ = ["CallTrace", "Settings", "begin", "configure", "settings"]

_SCOPE = "escalate"
_OPERATION = "chat"
_WORKFLOW = "invoke_workflow"
_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_CONTENT_ON = frozenset({"true", "1", "yes", "span_only", "span_and_event"})
# The conventions' advised bucket boundaries for the two GenAI client histograms.
_TOKEN_BUCKETS = tuple(4**i for i in range(14))
_DURATION_BUCKETS = tuple(0.01 * 2**i for i in range(14))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FAILED_ATTEMPT = frozenset({"provider_error", "error", "cancelled"})
_FAILED_CALL = frozenset({"failed", "error", "cancelled"})
_BREAKER_EVENTS = {
    "BreakerOpened": "escalate.breaker_opened",
    "BreakerClosed": "escalate.breaker_closed",
}


@dataclass(frozen=True)
class Settings:
    """What :func:`configure` set; ``None`` providers mean the global ones."""

    record_content: bool | None = None
    """Record messages and answers (the conventions' opt-in attributes); ``None``: as the
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` environment variable says."""
    tracer_provider: Any = None
    meter_provider: Any = None


_settings = Settings()


def configure(
    *,
    record_content: bool | None = None,
    tracer_provider: Any = None,
    meter_provider: Any = None,
) -> None:
    """Set how escalate traces (replacing earlier settings)."""
    global _settings
    _settings = Settings(record_content, tracer_provider, meter_provider)


def settings() -> Settings:
    return _settings


def _records_content() -> bool:
    if _settings.record_content is not None:
        return _settings.record_content
    return os.environ.get(_CONTENT_ENV, "").strip().lower() in _CONTENT_ON


# --- the API, loaded once ------------------------------------------------------------------


class _Api:
    """The opentelemetry modules and the instruments, loaded on the first traced call."""

    def __init__(self) -> None:
        from opentelemetry import context, metrics, trace

        self.context = context
        self.trace = trace
        self.metrics = metrics
        self.no_tracing = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
        self.no_metrics: tuple[type, ...] = (metrics.NoOpMeterProvider,)
        with contextlib.suppress(ImportError):  # the API's default, until one is set
            from opentelemetry.metrics._internal import _ProxyMeterProvider

            self.no_metrics = (_ProxyMeterProvider, metrics.NoOpMeterProvider)
        self.tracer: tuple[Any, Any] | None = None
        self.instruments: tuple[Any, _Instruments] | None = None
        # The API keeps the providers set by set_tracer_provider / set_meter_provider in
        # module globals; reading them is a tenth of the cost of get_tracer_provider(),
        # which looks at the environment each time. A provider named in the environment
        # (OTEL_PYTHON_*_PROVIDER) is loaded by the getters, so then they are asked.
        self.metrics_globals: Any = None
        with contextlib.suppress(ImportError):
            from opentelemetry.metrics import _internal as metrics_globals

            self.metrics_globals = metrics_globals
        self.quick = (
            hasattr(trace, "_TRACER_PROVIDER")
            and hasattr(self.metrics_globals, "_METER_PROVIDER")
            and "OTEL_PYTHON_TRACER_PROVIDER" not in os.environ
            and "OTEL_PYTHON_METER_PROVIDER" not in os.environ
        )

    def nothing_set(self) -> bool:
        """No provider was set in code or the environment: the API's no-op defaults."""
        return (
            self.quick
            and self.trace._TRACER_PROVIDER is None
            and self.metrics_globals._METER_PROVIDER is None
        )

    def tracer_of(self, provider: Any) -> Any:
        cached = self.tracer
        if cached is not None and cached[0] is provider:
            return cached[1]
        from escalate import __version__

        tracer = provider.get_tracer(_SCOPE, __version__)
        self.tracer = (provider, tracer)
        return tracer

    def instruments_of(self, provider: Any) -> _Instruments:
        cached = self.instruments
        if cached is not None and cached[0] is provider:
            return cached[1]
        instruments = _Instruments(provider)
        self.instruments = (provider, instruments)
        return instruments


class _Instruments:
    def __init__(self, provider: Any) -> None:
        from escalate import __version__

        meter = provider.get_meter(_SCOPE, __version__)
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.calls = meter.create_counter(
            "escalate.calls", unit="{call}", description="Calls of escalating functions."
        )
        self.escalations = meter.create_counter(
            "escalate.escalations",
            unit="{escalation}",
            description="Moves up a tier, by trigger and gate.",
        )
        self.cost = meter.create_counter(
            "escalate.cost", unit="USD", description="Known cost of the requests, in USD."
        )


_api: _Api | None = None
_available: bool | None = None


def _load() -> _Api | None:
    global _api, _available
    if _available is None:
        try:
            _available = importlib.util.find_spec("opentelemetry.trace") is not None
        except (ImportError, ValueError):  # a parent blocked in sys.modules
            _available = False
        if _available:
            try:
                _api = _Api()
            except Exception:
                _available = False
    return _api


def begin(function: str) -> CallTrace | None:
    """The call's trace, or ``None`` when neither traces nor metrics are configured."""
    if _available is False:
        return None
    api = _load()
    if api is None:
        return None
    given = _settings.tracer_provider is not None or _settings.meter_provider is not None
    if not given and api.nothing_set():
        return None
    with contextlib.suppress(Exception):
        tracer_provider = _settings.tracer_provider or api.trace.get_tracer_provider()
        meter_provider = _settings.meter_provider or api.metrics.get_meter_provider()
        tracer = None
        if not isinstance(tracer_provider, api.no_tracing):
            tracer = api.tracer_of(tracer_provider)
        instruments = None
        if not isinstance(meter_provider, api.no_metrics):
            instruments = api.instruments_of(meter_provider)
        if tracer is None and instruments is None:
            return None
        return CallTrace(api, tracer, instruments, function, _records_content())
    return None


# --- one call --------------------------------------------------------------------------------


def _ns(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


@dataclass
class _Step:
    """A performed Call step: its span, when it ended, the attempts it came to."""

    span: Any
    call: Call
    ended_ns: int
    attempts: tuple[Attempt, ...]
    error: str | None = None
    finish_reason: str | None = None
    """Why the model stopped, off the step's raw completion (its last request's), if any."""


class CallTrace:
    """The spans of one call; built by :func:`begin` only when something records."""

    def __init__(
        self,
        api: _Api,
        tracer: Any,
        instruments: _Instruments | None,
        function: str,
        record_content: bool,
    ) -> None:
        self.api = api
        self.tracer = tracer
        self.instruments = instruments
        self.function = function
        self.record_content = record_content
        self.span: Any = None
        self.steps: list[_Step] = []
        self.move_times: list[int] = []
        self.events: list[tuple[int, str, dict[str, Any]]] = []
        """The call span's events, added in time order when it ends."""
        if tracer is not None:
            self.span = tracer.start_span(
                f"{_WORKFLOW} {function}",
                kind=api.trace.SpanKind.INTERNAL,
                attributes={
                    "gen_ai.operation.name": _WORKFLOW,
                    "gen_ai.workflow.name": function,
                    "escalate.function": function,
                },
            )

    # --- the walk ----------------------------------------------------------------------

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        """The call span is the current span inside."""
        token = None
        if self.span is not None:
            with contextlib.suppress(Exception):
                token = self.api.context.attach(self.api.trace.set_span_in_context(self.span))
        try:
            yield
        finally:
            if token is not None:
                with contextlib.suppress(Exception):
                    self.api.context.detach(token)

    def listen(self, others: Callable[[Any], None] | None) -> Callable[[Any], None]:
        """The call's event listener: the moves' times for the span, then everyone else."""

        def on_event(event: Any) -> None:
            kind = type(event).__name__
            if kind in ("Escalated", "MovedSideways"):
                self.move_times.append(time.time_ns())
            elif kind in _BREAKER_EVENTS:
                self._breaker_changed(_BREAKER_EVENTS[kind], event)
            if others is not None:
                others(event)

        return on_event

    def _breaker_changed(self, name: str, event: Any) -> None:
        """This call's request opened or closed a deployment's breaker: an event."""
        with contextlib.suppress(Exception):
            attributes = {
                f"escalate.{key}": value
                for key, value in vars(event).items()
                if key not in ("function", "model", "provider")
                and isinstance(value, (str, int, float, bool))
            }
            self.events.append((time.time_ns(), name, attributes))

    def perform_sync(self, call: Call) -> TierCall:
        """Perform a Call step with its span current while the request runs."""
        span, token = self._start(call)
        try:
            result = call.perform_sync()
        except BaseException as error:
            self._stopped(span, call, error)
            raise
        finally:
            self._detach(token)
        self._performed(span, call, result)
        return result

    async def perform_async(self, call: Call) -> TierCall:
        span, token = self._start(call)
        try:
            result = await call.perform_async()
        except BaseException as error:
            self._stopped(span, call, error)
            raise
        finally:
            self._detach(token)
        self._performed(span, call, result)
        return result

    def _start(self, call: Call) -> tuple[Any, Any]:
        if self.tracer is None:
            return None, None
        with contextlib.suppress(Exception):
            deployment = call.deployment
            span = self.tracer.start_span(
                f"{_OPERATION} {deployment.model}",
                kind=self.api.trace.SpanKind.CLIENT,
                attributes={
                    "gen_ai.operation.name": _OPERATION,
                    "gen_ai.provider.name": deployment.provider_name,
                    "gen_ai.request.model": deployment.model,
                    "escalate.deployment": deployment.name,
                },
            )
            token = self.api.context.attach(self.api.trace.set_span_in_context(span))
            return span, token
        return None, None

    def _detach(self, token: Any) -> None:
        if token is not None:
            with contextlib.suppress(Exception):
                self.api.context.detach(token)

    def _performed(self, span: Any, call: Call, result: TierCall) -> None:
        if span is None:
            return
        ended = time.time_ns()
        error = None
        if not result.attempts and hasattr(result, "reason"):
            error = getattr(result, "reason", None)
        finished = None
        completion = getattr(result, "completion", None)
        if completion is not None:
            with contextlib.suppress(Exception):
                finished = finish_reason(completion)
        self.steps.append(_Step(span, call, ended, result.attempts, error, finished))

    def _stopped(self, span: Any, call: Call, error: BaseException) -> None:
        """The step raised (a cancellation, Ctrl-C, a blocked provider): end its span now."""
        if span is None:
            return
        with contextlib.suppress(Exception):
            kind = type(error).__name__
            cancelled = not isinstance(error, Exception) or kind == "CancelledError"
            span.set_attribute("error.type", "cancelled" if cancelled else kind)
            span.set_attribute("escalate.outcome", "cancelled" if cancelled else "error")
            span.set_status(self.api.trace.StatusCode.ERROR, kind)
            span.end()

    def verdict(self, check: Check, verdict: Verdict) -> None:
        """What the gates said of an answer: an event on the call span."""
        if self.span is None:
            return
        with contextlib.suppress(Exception):
            attributes: dict[str, Any] = {
                "escalate.tier": check.context.tier,
                "escalate.deployment": check.context.deployment,
                "escalate.verdict": "passed" if verdict.rejection is None else "rejected",
            }
            if verdict.rejection is not None:
                attributes["escalate.gate"] = verdict.rejected_by
                attributes["escalate.reason"] = str(verdict.rejection.reason)
            for gate, score in verdict.scores.items():
                attributes[f"escalate.score.{gate}"] = score
            self.events.append((time.time_ns(), "escalate.gate_verdict", attributes))

    # --- the end -------------------------------------------------------------------------

    def finish(self, receipt: Receipt | None, error: BaseException | None = None) -> None:
        """End every span with the receipt's facts and record the metrics."""
        with contextlib.suppress(Exception):
            if self.tracer is not None:
                self._end_steps(receipt)
                self._end_call(receipt, error)
        if self.instruments is not None and receipt is not None:
            with contextlib.suppress(Exception):
                self._record(receipt)

    def _end_steps(self, receipt: Receipt | None) -> None:
        final: dict[tuple[str, datetime], Attempt] = {}
        if receipt is not None:
            final = {(a.deployment, a.started_at): a for a in receipt.attempts}
        for step in self.steps:
            with contextlib.suppress(Exception):
                attempts = [final.get((a.deployment, a.started_at), a) for a in step.attempts]
                self._end_step(step, attempts)

    def _end_step(self, step: _Step, attempts: list[Attempt]) -> None:
        span = step.span
        if self.record_content:
            span.set_attribute("gen_ai.input.messages", _input_messages(step.call.messages))
        if len(attempts) == 1:
            self._describe(span, attempts[0], step.finish_reason)
        elif not attempts:
            span.set_attribute("escalate.outcome", "error")
            span.set_attribute("error.type", "error")
            if step.error:
                span.set_attribute("escalate.reason", step.error)
            span.set_status(self.api.trace.StatusCode.ERROR, "no request was made")
        else:
            # instructor re-asked inside the step: one child span per request.
            span.set_attribute("escalate.requests", len(attempts))
            span.set_attribute("escalate.outcome", attempts[-1].outcome)
            parent = self.api.trace.set_span_in_context(span)
            for index, attempt in enumerate(attempts):
                last = index == len(attempts) - 1
                started = _ns(attempt.started_at)
                child = self.tracer.start_span(
                    f"{_OPERATION} {attempt.requested_model}",
                    context=parent,
                    kind=self.api.trace.SpanKind.CLIENT,
                    start_time=started,
                )
                self._describe(child, attempt, step.finish_reason if last else None)
                child.end(end_time=started + int(attempt.latency_s * 1e9))
        span.end(end_time=step.ended_ns)

    def _describe(self, span: Any, attempt: Attempt, finished: str | None = None) -> None:
        """An attempt's facts on its span: the conventions', then escalate's own."""
        attributes: dict[str, Any] = _genai(attempt)
        if attempt.input_tokens is not None:
            attributes["gen_ai.usage.input_tokens"] = attempt.input_tokens
        if attempt.output_tokens is not None:
            attributes["gen_ai.usage.output_tokens"] = attempt.output_tokens
        if attempt.cached_tokens is not None:
            attributes["gen_ai.usage.cache_read.input_tokens"] = attempt.cached_tokens
        if finished is not None:
            attributes["gen_ai.response.finish_reasons"] = (finished,)
        if attempt.status_code is not None:
            attributes["http.response.status_code"] = attempt.status_code
        attributes.update(
            {
                "escalate.tier": attempt.tier,
                "escalate.deployment": attempt.deployment,
                "escalate.purpose": attempt.purpose,
                "escalate.reask": attempt.reask,
                "escalate.outcome": attempt.outcome,
            }
        )
        optional = {
            "escalate.trigger": attempt.trigger,
            "escalate.gate": attempt.gate,
            "escalate.reason": attempt.reason,
            "escalate.cost_source": attempt.cost_source,
            "escalate.cost_note": attempt.cost_note,
        }
        attributes.update({k: v for k, v in optional.items() if v is not None})
        if attempt.cost_usd is not None:
            attributes["escalate.cost_usd"] = float(attempt.cost_usd)
        for gate, score in attempt.scores.items():
            attributes[f"escalate.score.{gate}"] = score
        if self.record_content and attempt.raw_output is not None:
            attributes["gen_ai.output.messages"] = _output_messages(attempt, finished)
        error = _error_type(attempt)
        if error is not None:
            attributes["error.type"] = error
        span.set_attributes(attributes)
        if error is not None:
            span.set_status(self.api.trace.StatusCode.ERROR, attempt.reason or error)

    def _end_call(self, receipt: Receipt | None, error: BaseException | None) -> None:
        span = self.span
        if receipt is None:
            span.set_attribute("error.type", type(error).__name__ if error else "error")
            span.set_status(self.api.trace.StatusCode.ERROR, "the call ended before a request")
            span.end()
            return
        ended = time.time_ns()
        for move, moment in zip(receipt.moves, self._move_moments(receipt, ended), strict=False):
            name = "escalate.escalated" if move.kind == "up" else "escalate.moved_sideways"
            attributes = {
                "escalate.from_tier": move.from_tier,
                "escalate.from_deployment": move.from_deployment,
                "escalate.to_tier": move.to_tier,
                "escalate.to_deployment": move.to_deployment,
                "escalate.trigger": move.trigger,
                "escalate.reason": move.reason,
            }
            if move.gate is not None:
                attributes["escalate.gate"] = move.gate
            self.events.append((moment, name, attributes))
        self._breaker_skips(receipt)
        for moment, name, attributes in sorted(self.events, key=lambda e: e[0]):
            span.add_event(name, attributes, timestamp=moment)
        span.set_attributes(_call_attributes(receipt, error))
        if receipt.outcome in _FAILED_CALL:
            span.set_status(self.api.trace.StatusCode.ERROR, receipt.outcome)
        span.end()

    def _breaker_skips(self, receipt: Receipt) -> None:
        """Deployments an open circuit breaker skipped: no request, so no request span."""
        for attempt in receipt.attempts:
            if attempt.outcome == "skipped":
                attributes = {
                    "escalate.tier": attempt.tier,
                    "escalate.deployment": attempt.deployment,
                    "escalate.trigger": attempt.trigger or "breaker",
                    "escalate.reason": attempt.reason or "",
                }
                self.events.append((_ns(attempt.started_at), "escalate.breaker_skip", attributes))

    def _move_moments(self, receipt: Receipt, ended: int) -> list[int]:
        """When each move happened (heard as it happened), else the call's end."""
        return self.move_times + [ended] * (len(receipt.moves) - len(self.move_times))

    def _record(self, receipt: Receipt) -> None:
        instruments = self.instruments
        assert instruments is not None
        function = {"escalate.function": receipt.function}
        for attempt in receipt.attempts:
            if attempt.outcome == "skipped":
                continue
            attributes = {**_genai(attempt), "escalate.tier": attempt.tier}
            error = _error_type(attempt)
            duration = dict(attributes)
            if error is not None:
                duration["error.type"] = error
            instruments.duration.record(attempt.latency_s, duration)
            if attempt.input_tokens is not None:
                tokens = {**attributes, "gen_ai.token.type": "input"}
                instruments.tokens.record(attempt.input_tokens, tokens)
            if attempt.output_tokens is not None:
                tokens = {**attributes, "gen_ai.token.type": "output"}
                instruments.tokens.record(attempt.output_tokens, tokens)
            if attempt.cost_usd is not None:
                instruments.cost.add(float(attempt.cost_usd), {**attributes, **function})
        for move in receipt.escalations:
            attributes = {**function, "escalate.trigger": move.trigger}
            if move.gate is not None:
                attributes["escalate.gate"] = move.gate
            instruments.escalations.add(1, attributes)
        called = {
            **function,
            "escalate.outcome": receipt.outcome,
            "escalate.escalated": receipt.escalated,
        }
        if receipt.answered_by is not None:
            called["escalate.answered_by"] = receipt.answered_by
        instruments.calls.add(1, called)


def _call_attributes(receipt: Receipt, error: BaseException | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "escalate.receipt_id": receipt.id,
        "escalate.outcome": receipt.outcome,
        "escalate.escalated": receipt.escalated,
        "escalate.start_tier": receipt.route.start_tier,
        "escalate.route_source": receipt.route.source,
        "escalate.tiers_tried": receipt.tiers_tried,
        "escalate.attempts": len(receipt.attempts),
        "escalate.known_cost_usd": float(receipt.known_cost_usd),
        "escalate.usage.input_tokens": receipt.input_tokens,
        "escalate.usage.output_tokens": receipt.output_tokens,
    }
    if receipt.answered_by is not None:
        attributes["escalate.answered_by"] = receipt.answered_by
    if receipt.cost_usd is not None:
        attributes["escalate.cost_usd"] = float(receipt.cost_usd)
    if receipt.task is not None:
        attributes["escalate.task"] = receipt.task
    sources = sorted({a.cost_source for a in receipt.attempts if a.cost_source})
    if sources:
        attributes["escalate.cost_sources"] = tuple(sources)
    if receipt.outcome in _FAILED_CALL:
        attributes["error.type"] = type(error).__name__ if error else receipt.outcome
    return attributes


def _genai(attempt: Attempt) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": _OPERATION,
        "gen_ai.provider.name": attempt.provider,
        "gen_ai.request.model": attempt.requested_model,
    }
    if attempt.served_model is not None:
        attributes["gen_ai.response.model"] = attempt.served_model
    return attributes


def _error_type(attempt: Attempt) -> str | None:
    """The conventions' ``error.type`` of an attempt that failed as a request: the HTTP
    status when there is one, else the trigger. A rejected answer is no request error."""
    if attempt.outcome not in _FAILED_ATTEMPT:
        return None
    if attempt.status_code is not None:
        return str(attempt.status_code)
    return attempt.trigger or attempt.outcome


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content
        )
    return "" if content is None else str(content)


def _input_messages(messages: list[dict[str, Any]]) -> str:
    """The conventions' ``gen_ai.input.messages``: role and text parts, as JSON."""
    return json.dumps(
        [
            {"role": m.get("role"), "parts": [{"type": "text", "content": _text(m.get("content"))}]}
            for m in messages
        ],
        ensure_ascii=False,
    )


def _output_messages(attempt: Attempt, finished: str | None) -> str:
    message: dict[str, Any] = {
        "role": "assistant",
        "parts": [{"type": "text", "content": attempt.raw_output}],
    }
    if finished is not None:
        message["finish_reason"] = finished
    return json.dumps([message], ensure_ascii=False)
