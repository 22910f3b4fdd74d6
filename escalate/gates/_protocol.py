"""The gate protocol: what a gate is, what it is handed, how it rejects.

A gate is any callable, sync or async, taking ``(answer, context)``:

- to **pass**, return ``None``, or a number: a score (a confidence of 0.83) that the
  receipt keeps under the gate's name; scores of passing answers are what calibration
  needs later; a score is a finite number (receipts are JSON: no ``nan``, no ``inf``);
- to **reject**, raise :class:`Rejected` with a reason, as a pydantic validator would;
  the reason reaches the receipt verbatim and the task moves up a tier.

A gate may also carry optional capabilities, each a :class:`typing.Protocol` below that
the built-in gates satisfy: a ``name`` (how receipts call it, default the function's
``__name__``), :class:`SamplingGate`, :class:`FollowUpGate`, :class:`TierAwareGate`,
:class:`RequestingGate`, :class:`ModelAwareGate`.

This module imports nothing from the gate families: they all import it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel

from escalate._receipt import Attempt

if TYPE_CHECKING:
    from escalate._config import Tier

__all__ = [
    "FollowUpGate",
    "Gate",
    "GateContext",
    "GateResult",
    "ModelAwareGate",
    "Rejected",
    "RequestingGate",
    "SamplingGate",
    "TierAwareGate",
    "finite_score",
    "gate_name",
    "is_async_gate",
]


class Rejected(Exception):
    """Raised by a gate to reject an answer; ``reason`` reaches the receipt verbatim.

    ``score``, when given, is kept on the receipt like a passing answer's score; it must be
    a finite number, or the receipt could not be written as JSON and read back.
    """

    def __init__(self, reason: str, *, score: float | None = None) -> None:
        if isinstance(score, (int, float)) and not math.isfinite(score):
            raise ValueError(
                f"Rejected({reason!r}, score={score!r}): a gate's score must be a finite "
                "number (or None); receipts keep it as JSON, which has no nan or inf"
            )
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
    asked for samples (:class:`SamplingGate`); empty otherwise."""
    follow_up: Any = None
    """The tier's reply to a gate's follow-up request (:class:`FollowUpGate`), or None
    when no gate asked or the request failed."""
    asked: int = 0
    """How many samples were asked for in this check, failed ones included (``samples``
    holds only those that answered); 0 when no gate asked for samples."""
    scores: Mapping[str, float] = field(default_factory=dict)
    """The scores the gates before this one recorded in this check, by gate name (a live,
    read-only view: a learned gate reads the other gates' scores here)."""


GateResult = float | None


@runtime_checkable
class Gate(Protocol):
    """The shape of a gate (see the module docstring)."""

    def __call__(
        self, answer: Any, context: GateContext, /
    ) -> GateResult | Awaitable[GateResult]: ...


# --- optional capabilities ----------------------------------------------------------------


@runtime_checkable
class SamplingGate(Gate, Protocol):
    """A gate that judges several answers of one tier (the consistency gate).

    The engine asks the tier for ``samples - 1`` more answers to the same request
    (concurrently under async; each one an attempt on the receipt, its cost counted),
    returns the answer ``choose`` picks among them all (the first answer included), and
    hands every sample to the gates in ``context.samples``. When several gates sample, the
    tier is asked for the largest ``samples``, and the first gate's ``choose`` picks.
    """

    @property
    def samples(self) -> int:
        """How many answers the gate wants from the tier, the first one included."""
        ...

    def choose(self, samples: Sequence[Any]) -> Any:
        """Which of the sampled answers the call returns (the majority)."""
        ...


@runtime_checkable
class FollowUpGate(Gate, Protocol):
    """A gate that puts one more question to the tier about its answer (asked confidence).

    After the tier answers, the engine sends the same tier the request ``follow_up``
    returns, parses the reply into its response model, records it as its own attempt on
    the receipt (trigger ``follow_up``, its cost counted), and hands the parsed reply to
    the gates in ``context.follow_up`` (None when the request failed). Only the first
    gate with a follow-up is asked.
    """

    def follow_up(
        self, answer: Any, messages: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], type[BaseModel]]:
        """The follow-up request: its messages and the response model of its reply."""
        ...


@runtime_checkable
class TierAwareGate(Gate, Protocol):
    """A gate that can only work on some tiers (the logprob gate: OpenAI JSON modes).

    When the decorator is applied, the tier builder calls ``check_tier`` once for every
    tier the gate applies to, so a tier the gate cannot judge is refused before any call.
    """

    def check_tier(self, tier: Tier) -> None:
        """Raise :class:`~escalate.ConfigurationError` saying why ``tier`` (or one of its
        fallbacks) cannot be gated; return None when it can."""
        ...


@runtime_checkable
class RequestingGate(Gate, Protocol):
    """A gate whose tiers' requests need extra arguments (``logprobs=True``).

    When the decorator is applied, the tier builder merges ``request_kwargs`` into the
    create arguments of every deployment of the tiers the gate applies to, and only those.
    """

    @property
    def request_kwargs(self) -> Mapping[str, Any]:
        """The arguments added to the tier's requests."""
        ...


@runtime_checkable
class ModelAwareGate(Gate, Protocol):
    """A gate that reads named fields of the answer (every field gate).

    When the decorator is applied, it calls ``check_response_model`` with the response
    model, so a field name the model does not have (a typo) is refused before any call.
    """

    def check_response_model(self, response_model: type[Any]) -> None:
        """Raise :class:`~escalate.ConfigurationError` naming a field the model lacks."""
        ...


# --- helpers the engine uses ----------------------------------------------------------------


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


def finite_score(gate: Callable[..., Any], value: object) -> float:
    """The score a gate returned, as a float; a TypeError naming the gate when it is not a
    finite number (a bool, a string, ``nan``, ``inf``): receipts keep scores as JSON."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"gate {gate_name(gate)} returned {value!r}: a score must be a finite number; "
            "a gate passes by returning None or a score, and rejects by raising "
            "escalate.gates.Rejected(reason)"
        )
    score = float(value)
    if not math.isfinite(score):
        raise TypeError(
            f"gate {gate_name(gate)} returned the score {value!r}: a score must be a finite "
            "number (receipts keep it as JSON, which has no nan or inf)"
        )
    return score
