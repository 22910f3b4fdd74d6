"""The conventions' GenAI client histograms and escalate's counters, from the receipt."""

from __future__ import annotations

from typing import TYPE_CHECKING

from escalate._receipt import Receipt
from escalate._trace_attributes import _error_type, _genai

if TYPE_CHECKING:
    from escalate._trace_api import _Instruments

__all__ = ["record"]


def record(instruments: _Instruments, receipt: Receipt) -> None:
    """The call's metrics, all read from its receipt, so they agree with it."""
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
