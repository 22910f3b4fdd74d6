"""The spans of one call: the call span, one span per request, events for the moves."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from escalate._providers import finish_reason
from escalate._receipt import Attempt, Receipt
from escalate._trace_attributes import (
    _FAILED_CALL,
    _OPERATION,
    _call_attributes,
    _error_type,
    _genai,
    _input_messages,
    _ns,
    _output_messages,
)
from escalate._trace_metrics import record

if TYPE_CHECKING:
    from escalate._outcomes import TierCall
    from escalate._plan import Call, Check, Verdict
    from escalate._trace_api import _Api, _Instruments

__all__ = ["CallTrace"]

_WORKFLOW = "invoke_workflow"
_BREAKER_EVENTS = {
    "BreakerOpened": "escalate.breaker_opened",
    "BreakerClosed": "escalate.breaker_closed",
}


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
                record(self.instruments, receipt)

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
