"""A receipt as the rows of the store's tables (and nothing else: no I/O here)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from escalate._receipt import Receipt
from escalate._routing import REGENERATES_TAG

__all__ = ["Rows", "audit_row", "is_amendment", "path_of", "rows_of"]

PATH_SEPARATOR = ">"

# Read attribute by attribute: model_dump() per attempt was a third of the writer's time.
_ATTEMPT_COLUMNS = (
    "tier",
    "deployment",
    "provider",
    "requested_model",
    "served_model",
    "purpose",
    "reask",
    "outcome",
    "trigger",
    "gate",
    "reason",
    "status_code",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_usd",
    "cost_source",
    "latency_s",
)
_MOVE_COLUMNS = (
    "kind",
    "from_tier",
    "from_deployment",
    "to_tier",
    "to_deployment",
    "trigger",
    "gate",
    "reason",
)


@dataclass
class Rows:
    """The rows of a batch of receipts, table by table, ready for executemany."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    moves: list[dict[str, Any]] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)
    audits: list[dict[str, Any]] = field(default_factory=list)

    def add(self, receipt: Receipt) -> None:
        self.calls.append(_call_row(receipt))
        if receipt.audit is not None:
            self.audits.append(audit_row(receipt))
        for seq, attempt in enumerate(receipt.attempts):
            self.attempts.append(
                {
                    "call_id": receipt.id,
                    "seq": seq,
                    **{name: getattr(attempt, name) for name in _ATTEMPT_COLUMNS},
                    "started_at": _utc(attempt.started_at),
                    "hour": _utc(attempt.started_at).hour,
                }
            )
            for name, value in attempt.scores.items():
                self.scores.append(
                    {
                        "call_id": receipt.id,
                        "attempt_seq": seq,
                        "name": name,
                        "value": value,
                        "tier": attempt.tier,
                        "outcome": attempt.outcome,
                        "gate": attempt.gate,
                    }
                )
        for seq, move in enumerate(receipt.moves):
            self.moves.append(
                {
                    "call_id": receipt.id,
                    "seq": seq,
                    **{name: getattr(move, name) for name in _MOVE_COLUMNS},
                }
            )
        for key, tag in receipt.tags.items():
            self.tags.append({"call_id": receipt.id, "key": key, "value": tag})

    def __len__(self) -> int:
        return len(self.calls)


def audit_row(receipt: Receipt) -> dict[str, Any]:
    """The ``audits`` row of an audited receipt: its verdict, the audit's own cost, and the
    raw output of the returned answer and of the audit (the labels a learned gate reads)."""
    audit = receipt.audit
    assert audit is not None
    own = [a for a in receipt.attempts if a.purpose == "audit"]
    answers = [a for a in receipt.attempts if a.purpose != "audit" and a.outcome == "answered"]
    known = sum((a.cost_usd for a in own if a.cost_usd is not None), Decimal(0))
    return {
        "call_id": receipt.id,
        "tier": audit.tier,
        "of_tier": audit.of_tier,
        "agreed": audit.agreed,
        "mode": audit.mode,
        "key": audit.key,
        "answer_key": audit.answer_key,
        "audit_key": audit.audit_key,
        "gates": json.dumps(list(audit.gates)),
        "cost_usd": None if any(a.cost_usd is None for a in own) else known,
        "known_cost_usd": known,
        "answer_raw": answers[-1].raw_output if answers else None,
        "audit_raw": own[-1].raw_output if own else None,
    }


def is_amendment(receipt: Receipt) -> bool:
    """A background audit's receipt: it replaces the receipt stored under its id."""
    return receipt.audit is not None and receipt.audit.mode == "background"


def rows_of(receipts: list[Receipt]) -> Rows:
    rows = Rows()
    for receipt in receipts:
        rows.add(receipt)
    return rows


def path_of(receipt: Receipt) -> str:
    """The tiers tried, in order (``"cheap>strong"``); ``"(none)"`` when no request was made."""
    return PATH_SEPARATOR.join(receipt.tiers_tried) or "(none)"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _call_row(receipt: Receipt) -> dict[str, Any]:
    started = _utc(receipt.started_at)
    return {
        "id": receipt.id,
        "receipt_version": receipt.schema_version,
        "function": receipt.function,
        "task": receipt.task,
        "outcome": receipt.outcome,
        "answered_by": receipt.answered_by,
        "start_tier": receipt.route.start_tier,
        "route_source": receipt.route.source,
        "route_reason": receipt.route.reason,
        "path": path_of(receipt),
        "escalated": receipt.escalated,
        "attempt_count": len(receipt.attempts),
        "spent_attempts": receipt.spent_attempts,
        "cost_usd": receipt.cost_usd,
        "known_cost_usd": receipt.known_cost_usd,
        "input_tokens": receipt.input_tokens,
        "output_tokens": receipt.output_tokens,
        "started_at": started,
        "finished_at": _utc(receipt.finished_at),
        "hour": started.hour,
        "latency_s": receipt.latency_s,
        "regenerates": receipt.tags.get(REGENERATES_TAG),
        "receipt": receipt.to_json(),
    }
