"""Gates: checks on a well-formed answer that decide whether it is good enough.

A gate is any callable, sync or async, taking ``(answer, context)``:

- to **pass**, return ``None``, or a number: a score (a confidence of 0.83) that the
  receipt keeps under the gate's name; scores of passing answers are what calibration
  needs later;
- to **reject**, raise :class:`Rejected` with a reason, as a pydantic validator would;
  the reason reaches the receipt verbatim and the task moves up a tier.

Built in (each documented in docs/gates.md): ``min_length``, ``max_length``, ``cites``,
``known_ids``, ``not_refusal``, ``not_hedging``, ``complete``, ``not_empty`` (mechanical,
free); ``logprob_confidence``, ``self_reported``, ``asked_confidence``, ``consistency``
(confidence).

Gates given to ``@escalating(gates=[...])`` run on every tier; ``Tier(gates=[...])`` adds
gates for one tier. A gate may also carry, as attributes:

- ``name``: how receipts call it (default: the function's ``__name__``);
- ``request_kwargs``: extra arguments its tier's requests need (``logprobs=True``);
- ``check_tier(tier)``: called once when the decorator is applied, to refuse a tier it
  cannot work with (raise :class:`~escalate.ConfigurationError` saying why);
- ``samples``: how many answers the gate wants from the tier (the engine asks for the
  extra ones, concurrently under async, and hands all in ``context.samples``);
- ``choose(samples)``: which of the sampled answers is returned (the majority);
- ``follow_up(answer, messages) -> (messages, response_model)``: one more request the
  engine sends the same tier after the answer; the reply is ``context.follow_up``;
- ``check_response_model(model)``: called when the decorator is applied, to refuse a
  response model it cannot read (a field name that does not exist).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from escalate._receipt import Attempt

__all__ = [
    "DEFAULT_HEDGES",
    "DEFAULT_REFUSALS",
    "Gate",
    "GateContext",
    "Rejected",
    "asked_confidence",
    "cites",
    "complete",
    "consistency",
    "gate_name",
    "is_async_gate",
    "known_ids",
    "logprob_confidence",
    "max_length",
    "min_length",
    "not_empty",
    "not_hedging",
    "not_refusal",
    "self_reported",
]


class Rejected(Exception):
    """Raised by a gate to reject an answer; ``reason`` reaches the receipt verbatim."""

    def __init__(self, reason: str, *, score: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.score = score


@dataclass(frozen=True)
class GateContext:
    """What a gate may look at besides the answer."""

    messages: list[dict[str, Any]]
    """The messages the tier was sent."""
    tier: str
    deployment: str
    provider: str
    model: str
    """The model requested; the model that served is ``attempt.served_model``."""
    completion: Any
    """The raw SDK completion of the answering request (logprobs, finish reason)."""
    attempt: Attempt | None
    args: tuple[Any, ...] = ()
    """The escalating function's call arguments."""
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    is_last_tier: bool = False
    samples: tuple[Any, ...] = ()
    """Every answer sampled on this tier for this check, the first included, when a gate
    asked for samples (``samples = n``); empty otherwise."""
    follow_up: Any = None
    """The tier's reply to a gate's follow-up request (``follow_up(answer, messages)``),
    or None when no gate asked or the request failed."""


GateResult = float | None


class Gate(Protocol):
    """The shape of a gate (see the module docstring)."""

    def __call__(
        self, answer: Any, context: GateContext, /
    ) -> GateResult | Awaitable[GateResult]: ...


def gate_name(gate: Callable[..., Any]) -> str:
    """How receipts name a gate."""
    name = getattr(gate, "name", None)
    if isinstance(name, str) and name:
        return name
    return getattr(gate, "__name__", None) or type(gate).__name__


def is_async_gate(gate: Callable[..., Any]) -> bool:
    """Whether calling the gate returns an awaitable (an ``async def`` or async __call__)."""
    return inspect.iscoroutinefunction(gate) or inspect.iscoroutinefunction(
        getattr(gate, "__call__", None)  # noqa: B004 - an object's async __call__
    )


# The built-in gates live in their own rooms; they need the names above, so they come last.
from escalate._builtin_gates import (  # noqa: E402
    DEFAULT_HEDGES,
    DEFAULT_REFUSALS,
    cites,
    complete,
    known_ids,
    logprob_confidence,
    max_length,
    min_length,
    not_empty,
    not_hedging,
    not_refusal,
    self_reported,
)
from escalate._consistency import consistency  # noqa: E402
from escalate._followup import asked_confidence  # noqa: E402
