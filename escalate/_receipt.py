"""Receipts: the record of every attempt a call made, and what it cost.

A receipt is plain data (frozen pydantic models): it serialises to JSON and back without
loss, compares by value, pickles, and holds no client, key or header.
"""

from __future__ import annotations

import threading
import weakref
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

__all__ = ["Attempt", "Move", "Receipt", "receipt_of"]

Outcome = Literal["answered", "rejected", "provider_error", "error"]
"""What became of one attempt.

``answered``: its answer was accepted. ``rejected``: a quality failure (validation, a gate,
a matched ``on``, the model asked to escalate). ``provider_error``: the provider failed
(429, 5xx, timeout, connection). ``error``: an exception no trigger matched.
"""


ReceiptOutcome = Literal["answered", "best_effort", "failed", "error"]
"""How a call ended. ``best_effort``: no answer passed its gates (or the budget stopped the
walk) and ``when_unmet="best"`` returned the best answer so far."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Attempt(_Frozen):
    """One request to one model: a first try, a re-ask, or a retry after a provider failure."""

    tier: str
    deployment: str
    provider: str
    requested_model: str
    served_model: str | None = None
    input_tokens: int | None = None
    """All input tokens, cached ones included."""
    output_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: Decimal | None = None
    """Priced at ``served_model``; ``None`` when no price is known (see ``cost_note``)."""
    cost_source: Literal["genai-prices", "tier price"] | None = None
    cost_note: str | None = None
    latency_s: float = 0.0
    outcome: Outcome
    trigger: str | None = None
    """Why this attempt did not end the call: ``validation``, ``gate``, ``on``,
    ``truncated``, ``rate_limit``, ``server_error``, ``timeout``, ``connection``, ..."""
    reason: str | None = None
    """The trigger in words: the validation errors, a gate's reason, the HTTP status."""
    status_code: int | None = None
    raw_output: str | None = None
    """What the model produced, verbatim (tool arguments or text)."""
    reask: int = 0
    """0 for a tier's first try; n for its n-th re-ask."""
    scores: dict[str, float] = Field(default_factory=dict)
    """Scores that gates recorded for this answer (confidence and the like)."""
    started_at: datetime


class Move(_Frozen):
    """A change of tier (``up``, after a quality failure or by policy after a provider
    failure) or of deployment within a tier (``sideways``, after a provider failure)."""

    kind: Literal["up", "sideways"]
    from_tier: str
    from_deployment: str
    to_tier: str | None
    """``None`` when there was nowhere left to go."""
    to_deployment: str | None
    trigger: str
    reason: str
    question: str | None = None
    """When the model asked to escalate: its restatement of the question."""


class Receipt(_Frozen):
    """The whole story of one call of an escalating function."""

    # The computed totals are written to JSON for readers; reading back re-derives them.
    model_config = ConfigDict(frozen=True, extra="ignore")

    function: str
    outcome: ReceiptOutcome
    answered_by: str | None
    """The tier whose answer was returned."""
    attempts: tuple[Attempt, ...]
    moves: tuple[Move, ...] = ()
    started_at: datetime
    latency_s: float
    """Wall time of the whole call, backoff sleeps included."""
    route: str | None = None
    """How the starting tier was chosen, when it was not the first."""
    notes: tuple[str, ...] = ()

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cost_usd(self) -> Decimal | None:
        """Total cost; ``None`` if any attempt's cost is unknown (see ``known_cost_usd``)."""
        if any(a.cost_usd is None for a in self.attempts):
            return None
        return self.known_cost_usd

    @computed_field  # type: ignore[prop-decorator]
    @property
    def known_cost_usd(self) -> Decimal:
        """Sum of the costs that are known."""
        return sum((a.cost_usd for a in self.attempts if a.cost_usd is not None), Decimal(0))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def input_tokens(self) -> int:
        return sum(a.input_tokens or 0 for a in self.attempts)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def output_tokens(self) -> int:
        return sum(a.output_tokens or 0 for a in self.attempts)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def escalated(self) -> bool:
        """Whether the call moved up a tier at least once."""
        return any(m.kind == "up" for m in self.moves)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def spent_attempts(self) -> int:
        """Requests that did not give the returned answer: rejected answers, provider
        failures, a model's requests to escalate, gates' samples and follow-ups. What the
        call spent beyond one request, in requests."""
        answered = self.outcome in ("answered", "best_effort")
        return len(self.attempts) - (1 if answered and self.attempts else 0)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def model_escalations(self) -> int:
        """How often a model itself asked to escalate (``offer_escalation``)."""
        return sum(m.trigger == "model" for m in self.moves)

    @property
    def escalations(self) -> tuple[Move, ...]:
        """The moves up, in order: from which tier, to which, and why."""
        return tuple(m for m in self.moves if m.kind == "up")

    @property
    def tiers_tried(self) -> tuple[str, ...]:
        """Tier names in the order they were first tried."""
        return tuple(dict.fromkeys(a.tier for a in self.attempts))

    def to_json(self, *, indent: int | None = None) -> str:
        """Serialise to JSON; :meth:`from_json` reads it back to an equal receipt."""
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, data: str | bytes) -> Receipt:
        """Read a receipt written by :meth:`to_json`."""
        return cls.model_validate_json(data)

    def summary(self) -> str:
        """One line for a log: tiers, outcome, cost and time."""
        path = " -> ".join(self.tiers_tried) or "(none)"
        cost = "unknown" if self.cost_usd is None else f"${self.cost_usd:.6f}"
        return (
            f"{self.function}: {self.outcome} by {self.answered_by or '-'} via {path}; "
            f"{len(self.attempts)} attempt(s), cost {cost}, {self.latency_s * 1000:.1f} ms"
        )


# Results are the user's own pydantic objects, so the receipt cannot live on them without
# changing their equality or dumps. A side table keyed by identity, cleaned up by weakref
# callbacks, keeps results exactly as they would be without escalate.
_receipts: dict[int, tuple[weakref.ref[Any], Receipt]] = {}
_lock = threading.Lock()


def _forget(key: int) -> None:
    with _lock:
        _receipts.pop(key, None)


def attach(result: object, receipt: Receipt) -> None:
    """Remember ``receipt`` as the receipt of ``result`` for as long as ``result`` lives."""
    key = id(result)
    ref = weakref.ref(result, lambda _ref, key=key: _forget(key))  # type: ignore[misc]
    with _lock:
        _receipts[key] = (ref, receipt)


def receipt_of(obj: object) -> Receipt:
    """The receipt of a result returned by an escalating function, or of an
    :class:`~escalate.EscalationFailed` error.

    Raises ``LookupError`` when ``obj`` did not come from an escalating call.
    """
    receipt = getattr(obj, "receipt", None) if isinstance(obj, BaseException) else None
    if isinstance(receipt, Receipt):
        return receipt
    entry = _receipts.get(id(obj))
    if entry is not None and entry[0]() is obj:
        return entry[1]
    raise LookupError(
        f"no receipt for this {type(obj).__name__}: receipt_of() takes a result returned by "
        "an @escalating function (the object itself, not a copy) or an EscalationFailed error"
    )
