"""Receipts: the record of every attempt a call made, what it cost, and why it moved.

A receipt is plain data (frozen pydantic models): it serialises to JSON and back without
loss, compares by value, pickles, and holds no client, key or header. Receipts are stored
and queried (see the receipt store), so their shape is a versioned schema: every field
added later is optional, and a receipt written by schema version 1 parses in every later
version (``tests/fixtures/receipt-v1.json`` holds one to prove it). The JSON Schema in
``docs/receipt-schema.json`` is generated from these models.

The vocabulary, one word per idea:

- a *failure kind* says what went wrong: ``quality`` (the answer was not good enough:
  move up), ``provider`` (the provider failed: retry, then sideways) or ``error`` (an
  exception no trigger matches: it passes through unchanged);
- an attempt's *trigger* is the cause, from the closed set :data:`Trigger`;
- an attempt's *purpose* is why the request was made, from :data:`Purpose`;
- an attempt's *outcome* and a receipt's *outcome* use the same words for the same ideas.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

__all__ = [
    "PROVIDER_TRIGGERS",
    "QUALITY_TRIGGERS",
    "SCHEMA_VERSION",
    "Adaptive",
    "Attempt",
    "AttemptOutcome",
    "AuditVerdict",
    "CallOutcome",
    "Move",
    "Purpose",
    "Receipt",
    "Route",
    "Trigger",
    "new_receipt_id",
]

SCHEMA_VERSION = 1

Trigger = Literal[
    # quality failures: the task moves up
    "validation",
    "truncated",
    "refusal",
    "gate",
    "on",
    "self_escalation",
    "slow",
    # provider failures: retried, then sideways
    "rate_limit",
    "overloaded",
    "server_error",
    "timeout",
    "connection",
    "conflict",
    "bad_response",
    # no request was made: a deployment's circuit breaker was open
    "breaker",
    # the caller stopped the call (task cancelled, KeyboardInterrupt)
    "cancelled",
]
"""Why an attempt did not end the call (``None`` on an accepted answer and on an
exception no trigger matched, whose words are in ``reason``)."""

QUALITY_TRIGGERS: frozenset[str] = frozenset(
    {"validation", "truncated", "refusal", "gate", "on", "self_escalation", "slow"}
)
PROVIDER_TRIGGERS: frozenset[str] = frozenset(
    {
        "rate_limit",
        "overloaded",
        "server_error",
        "timeout",
        "connection",
        "conflict",
        "bad_response",
        "breaker",
    }
)

Purpose = Literal["answer", "reask", "retry", "sample", "follow_up", "audit"]
"""Why a request was made: a tier's first ``answer``, a ``reask`` after a validation
error or a gate's rejection, a ``retry`` after a provider failure, a consistency gate's
``sample``, a gate's ``follow_up`` question, or an ``audit`` of an answer that passed
(a stronger tier's second opinion, never the returned answer)."""

AttemptOutcome = Literal["answered", "rejected", "provider_error", "error", "skipped", "cancelled"]
"""What became of one attempt. ``answered``: its answer was accepted. ``rejected``: a
quality failure. ``provider_error``: the provider failed. ``error``: an exception no
trigger matched. ``skipped``: no request was made (an open circuit breaker).
``cancelled``: the call was stopped while this request was in flight."""

CallOutcome = Literal["answered", "best_effort", "failed", "error", "cancelled"]
"""How a call ended. ``answered``: an answer passed. ``best_effort``: none passed and
``when_unmet="best_effort"`` returned the best so far. ``failed``: escalate raised
:class:`~escalate.EscalationFailed`. ``error``: an exception no trigger matched passed
through unchanged. ``cancelled``: the caller stopped the call."""

RouteSource = Literal["default", "route", "options", "adaptive"]


def _unset(value: object) -> bool:
    return value is None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Attempt(_Frozen):
    """One request to one model (or one skipped by an open breaker)."""

    tier: str
    deployment: str
    provider: str
    requested_model: str
    served_model: str | None = None
    purpose: Purpose = "answer"
    reask: int = 0
    """0 for a tier's first try; n for its n-th re-ask (validation or gate)."""
    outcome: AttemptOutcome
    trigger: Trigger | None = None
    gate: str | None = None
    """The gate that rejected this answer (``trigger="gate"``), else ``None``."""
    reason: str | None = None
    """The trigger in words: the validation errors, a gate's reason, the HTTP status."""
    status_code: int | None = None
    input_tokens: int | None = None
    """All input tokens, cached ones included."""
    output_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: Decimal | None = None
    """Priced at ``served_model``; ``None`` when no price is known (see ``cost_note``)."""
    cost_source: Literal["genai-prices", "tier price"] | None = None
    cost_note: str | None = None
    latency_s: float = 0.0
    started_at: datetime
    raw_output: str | None = None
    """What the model produced, verbatim (tool arguments or text)."""
    scores: dict[str, float] = Field(default_factory=dict)
    """Scores that gates recorded for this answer (confidence and the like)."""
    # Fields added after schema v1 (below) are left out of the JSON while unset, so a v1
    # receipt writes back exactly as it was stored.
    choices: int | None = Field(default=None, exclude_if=_unset)
    """How many choices this one request asked for (OpenAI's ``n``: the prompt billed
    once, the tokens and cost those of every choice); ``None``: one."""
    variant: str | None = Field(default=None, exclude_if=_unset)
    """The prompt variant this sample was drawn with (a consistency gate's ``variants``);
    ``None``: the function's own prompt."""
    votes: tuple[str | None, ...] | None = Field(default=None, exclude_if=_unset)
    """On an answer judged by a consistency vote: every sample's key in the order drawn
    (this answer's request first), ``None`` for a sample that failed (a provider error or
    a choice that did not validate); ``None`` when there was no vote. Calibration reads
    it to replay smaller ``n`` and other thresholds without calling a model again."""


class Move(_Frozen):
    """A change of tier (``up``, after a quality failure or by policy after a provider
    failure) or of deployment within a tier (``sideways``, after a provider failure)."""

    kind: Literal["up", "sideways"]
    from_tier: str
    from_deployment: str
    to_tier: str
    to_deployment: str
    trigger: Trigger
    gate: str | None = None
    reason: str
    question: str | None = None
    """After a self-escalation: the model's restatement of the question."""


class Adaptive(_Frozen):
    """The numbers behind an adaptive start (``escalating(adaptive=...)``): the cheap
    tier's pass rate in this task class, learned from earlier receipts, and the expected
    costs that decided where the call started."""

    task_class: str
    """The class the estimate is kept for: the function, and its task when it has one."""
    tier: str
    """The tier whose pass rate was estimated (the cheapest)."""
    pass_rate: float
    """The posterior mean of that tier's pass rate (a Beta posterior, recent calls
    weighted more)."""
    low: float
    high: float
    """A 90% credible interval of the pass rate."""
    observations: float
    """The weight of evidence behind it: calls seen, discounted by age."""
    cost_start_cheap: Decimal | None
    """The expected cost of starting on ``tier``: its cost, plus the chance it fails times
    the cost of the tiers above; ``None`` until costs are measured."""
    cost_start_higher: Decimal | None
    """The expected cost of starting on the next tier up."""
    explored: bool = False
    """The estimate said start higher, but this call started cheap on purpose (a small
    share of calls does, so the estimate stays current)."""
    expected_costs: dict[str, Decimal] | None = Field(default=None, exclude_if=_unset)
    """The expected cost per call of starting on each tier whose costs are measured
    (tier name -> USD), the lowest of which decided the start."""


class Route(_Frozen):
    """Where the call started, and who chose it."""

    start_tier: str
    source: RouteSource = "default"
    """``default`` (the cheapest tier), ``route`` (the decorator's ``route=`` function),
    ``options`` (``escalate.options(start_at=...)``), ``adaptive`` (learned)."""
    reason: str | None = None
    adaptive: Adaptive | None = Field(default=None, exclude_if=_unset)
    """With ``source="adaptive"``: the estimate and costs behind the start."""


class AuditVerdict(_Frozen):
    """A stronger tier's second opinion on an answer that passed every gate
    (``escalating(audit=...)``): whether the two agree on the audit's key. A disagreement
    is a false pass of the gates and tier that let the answer through, and a label."""

    tier: str
    """The auditing tier (the strongest by default)."""
    of_tier: str
    """The tier whose returned answer was audited."""
    gates: tuple[str, ...] = ()
    """The gates the audited answer passed."""
    key: str | None = None
    """What was compared (a field name, or the key function's name)."""
    answer_key: str | None = None
    audit_key: str | None = None
    agreed: bool | None = None
    """``None`` when the audit got no answer (its attempt says why)."""
    mode: Literal["inline", "background"] = "inline"


def new_receipt_id() -> str:
    """A UUIDv7: unique, and sorting by it sorts by creation time (to the millisecond)."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & (1 << 48) - 1) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & (1 << 62) - 1
    hexed = f"{value:032x}"  # as str(uuid.UUID(int=value)), without building the object
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


class Receipt(_Frozen):
    """The whole story of one call of an escalating function."""

    # The computed totals are written to JSON for readers; reading back re-derives them.
    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = SCHEMA_VERSION
    id: str = Field(default_factory=new_receipt_id)
    function: str
    """The decorated function's ``module.qualname``."""
    task: str | None = None
    """The task class (``escalating(task=...)`` or ``options(task=...)``)."""
    tags: dict[str, str] = Field(default_factory=dict)
    outcome: CallOutcome
    answered_by: str | None
    """The tier whose answer was returned."""
    route: Route
    attempts: tuple[Attempt, ...]
    moves: tuple[Move, ...] = ()
    started_at: datetime
    finished_at: datetime
    latency_s: float
    """Wall time of the whole call, backoff sleeps included."""
    notes: tuple[str, ...] = ()
    audit: AuditVerdict | None = Field(default=None, exclude_if=_unset)
    """The audit of the returned answer, when this call was audited."""

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
        failures, self-escalations, gates' samples and follow-ups, audits."""
        answered = self.outcome in ("answered", "best_effort")
        made = sum(a.outcome != "skipped" for a in self.attempts)
        return made - (1 if answered and made else 0)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def self_escalations(self) -> int:
        """How often a model itself asked to escalate (``self_escalation=``)."""
        return sum(m.trigger == "self_escalation" for m in self.moves)

    @property
    def escalations(self) -> tuple[Move, ...]:
        """The moves up, in order: from which tier, to which, and why."""
        return tuple(m for m in self.moves if m.kind == "up")

    @property
    def tiers_tried(self) -> tuple[str, ...]:
        """Tier names in the order they were first tried for the answer (an audit's
        tier, asked only for a second opinion, is not among them)."""
        return tuple(dict.fromkeys(a.tier for a in self.attempts if a.purpose != "audit"))

    def to_json(self, *, indent: int | None = None) -> str:
        """Serialise to JSON; :meth:`from_json` reads it back to an equal receipt."""
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, data: str | bytes) -> Receipt:
        """Read a receipt written by :meth:`to_json` (of this or an earlier version)."""
        return cls.model_validate_json(data)

    def summary(self) -> str:
        """One line for a log: outcome, path, cost and time."""
        path = " -> ".join(self.tiers_tried) or "(no request)"
        cost = "unknown" if self.cost_usd is None else f"${self.cost_usd:.6f}"
        ended = f"answered by {self.answered_by}" if self.answered_by else self.outcome
        if self.outcome == "best_effort":
            ended = f"best effort from {self.answered_by}"
        audited = ""
        if self.audit is not None:
            verdict = {True: "agreed", False: "disagreed", None: "no verdict"}[self.audit.agreed]
            audited = f"; audited by {self.audit.tier}: {verdict}"
        return (
            f"{self.function}: {ended}; path {path}; {len(self.attempts)} attempt(s), "
            f"cost {cost}, {self.latency_s * 1000:.1f} ms{audited}"
        )
