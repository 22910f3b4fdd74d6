"""The conversation receipt: every turn with its own call receipt, the tier of each and
why, every trigger that fired, every handoff and memory update, and the totals.

Plain data like :class:`~escalate.Receipt` (frozen pydantic models), versioned the same
way: ``schema_version`` 1; fields added later are optional. The totals and metrics are
computed, written to JSON for readers and re-derived when read back.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from escalate._receipt import Receipt, new_receipt_id

__all__ = [
    "SCHEMA_VERSION",
    "ConversationReceipt",
    "FiredTrigger",
    "HandoffRecord",
    "MemoryUpdate",
    "Metrics",
    "TurnRecord",
]

SCHEMA_VERSION = 1

TurnSource = Literal["schedule", "trigger", "holding", "step_down"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class FiredTrigger(_Frozen):
    """A trigger that fired on a turn, and its reason (for ``low_confidence``, the model's)."""

    name: str
    reason: str
    when: Literal["before", "during"] = "before"
    """``before``: on the history, so the turn started higher; ``during``: the model asked
    to escalate within the turn."""


class HandoffRecord(_Frozen):
    """The memory handed to a tier taking over at a turn (one system block)."""

    turn: int
    from_tier: str | None
    to_tier: str
    memory_version: int
    tokens: int
    """Estimated tokens of the injected block (``ceil(chars / 4)``)."""


class MemoryUpdate(_Frozen):
    """One write of the handoff memory by the strongest rung."""

    version: int
    after_turn: int
    reason: str
    memory: dict[str, Any]
    tokens: int
    trimmed: bool = False
    """The writer's memory passed the budget and was cut to it."""
    failed: bool = False
    """The write found no answer; the previous memory was kept."""
    receipt: Receipt


class TurnRecord(_Frozen):
    """One turn: where it started and why, who answered, and its own call receipt."""

    index: int
    """1-based."""
    tier: str
    """The rung the turn started on."""
    source: TurnSource
    why: str
    answered_by: str | None
    triggers: tuple[FiredTrigger, ...] = ()
    handoff: bool = False
    """Whether the memory was injected into this turn's request."""
    receipt: Receipt
    feedback: bool | None = None
    """A label on this answer (``Conversation.feedback``): aligned with what was meant?"""

    @property
    def escalated_within(self) -> bool:
        return self.receipt.escalated


class Metrics(_Frozen):
    """The conversation's figures (also what a receipt store reports)."""

    turns: int
    resolved: bool | None
    cost_usd: Decimal | None
    known_cost_usd: Decimal
    memory_cost_usd: Decimal
    input_tokens: int
    output_tokens: int
    cost_per_resolved_task_usd: Decimal | None
    tokens_per_resolved_task: int | None
    turns_to_completion: int | None
    escalation_frequency: float
    """Share of turns that ran above the schedule's rung or moved up within the turn."""
    latency_per_turn_s: float
    first_turn_alignment: float | None
    """Share of labelled answers among the first two turns marked aligned; None unlabelled."""
    triggers_fired: dict[str, int]


class ConversationReceipt(_Frozen):
    """The whole story of one conversation on the ladder."""

    schema_version: int = SCHEMA_VERSION
    id: str = Field(default_factory=new_receipt_id)
    ladder: tuple[tuple[str, int | None], ...]
    """The rungs, strongest first: (tier, turns on the schedule)."""
    turns: tuple[TurnRecord, ...] = ()
    handoffs: tuple[HandoffRecord, ...] = ()
    memory_updates: tuple[MemoryUpdate, ...] = ()
    resolved: bool | None = None
    started_at: datetime
    updated_at: datetime

    def _receipts(self) -> list[Receipt]:
        return [t.receipt for t in self.turns] + [m.receipt for m in self.memory_updates]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cost_usd(self) -> Decimal | None:
        """Every turn and memory write; ``None`` if any cost is unknown."""
        costs = [r.cost_usd for r in self._receipts()]
        if any(c is None for c in costs):
            return None
        return self.known_cost_usd

    @computed_field  # type: ignore[prop-decorator]
    @property
    def known_cost_usd(self) -> Decimal:
        return sum((r.known_cost_usd for r in self._receipts()), Decimal(0))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def memory_cost_usd(self) -> Decimal:
        """What writing the memory cost (its injection is in the turns' input tokens)."""
        return sum((m.receipt.known_cost_usd for m in self.memory_updates), Decimal(0))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def input_tokens(self) -> int:
        return sum(r.input_tokens for r in self._receipts())

    @computed_field  # type: ignore[prop-decorator]
    @property
    def output_tokens(self) -> int:
        return sum(r.output_tokens for r in self._receipts())

    @property
    def tiers(self) -> tuple[str, ...]:
        """The starting rung of each turn, in order."""
        return tuple(t.tier for t in self.turns)

    def metrics(self) -> Metrics:
        """The conversation's figures: cost and tokens per resolved task, turns to
        completion, escalation frequency, latency per turn, first-turn alignment."""
        turns = len(self.turns)
        raised = sum(t.source in ("trigger", "holding") or t.escalated_within for t in self.turns)
        labels = [t.feedback for t in self.turns[:2] if t.feedback is not None]
        fired: dict[str, int] = {}
        for turn in self.turns:
            for trigger in turn.triggers:
                fired[trigger.name] = fired.get(trigger.name, 0) + 1
        done = self.resolved is True
        return Metrics(
            turns=turns,
            resolved=self.resolved,
            cost_usd=self.cost_usd,
            known_cost_usd=self.known_cost_usd,
            memory_cost_usd=self.memory_cost_usd,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost_per_resolved_task_usd=self.cost_usd if done else None,
            tokens_per_resolved_task=self.input_tokens + self.output_tokens if done else None,
            turns_to_completion=turns if done else None,
            escalation_frequency=raised / turns if turns else 0.0,
            latency_per_turn_s=(
                sum(t.receipt.latency_s for t in self.turns) / turns if turns else 0.0
            ),
            first_turn_alignment=sum(labels) / len(labels) if labels else None,
            triggers_fired=fired,
        )

    def to_json(self, *, indent: int | None = None) -> str:
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, data: str | bytes) -> ConversationReceipt:
        return cls.model_validate_json(data)

    def summary(self) -> str:
        """One line per turn: tier, why, triggers, handoff, cost."""
        lines = []
        for t in self.turns:
            cost = "?" if t.receipt.cost_usd is None else f"${t.receipt.cost_usd:.6f}"
            fired = ", ".join(f.name for f in t.triggers)
            extra = (f" [{fired}]" if fired else "") + (" +memory" if t.handoff else "")
            lines.append(f"turn {t.index}: {t.tier} ({t.why}){extra} -> {t.answered_by} {cost}")
        total = "unknown" if self.cost_usd is None else f"${self.cost_usd:.6f}"
        lines.append(
            f"{len(self.turns)} turns, {len(self.handoffs)} handoffs, "
            f"{len(self.memory_updates)} memory writes, total {total}"
        )
        return "\n".join(lines)
