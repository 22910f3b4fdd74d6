"""Synthetic receipts for the adaptive start's tests: a call that started on a tier and
passed there, or moved up (for quality or at the provider) and was answered higher."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from escalate import Attempt, Move, Receipt, Route

FUNCTION = "tests.adaptive.extract"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def attempt(
    tier: str,
    outcome: str = "answered",
    cost: Decimal | str | None = "0.001",
    *,
    trigger: str | None = None,
    purpose: str = "answer",
    latency_s: float = 0.5,
    at: datetime = T0,
) -> Attempt:
    return Attempt(
        tier=tier,
        deployment=tier,
        provider="openai",
        requested_model=tier,
        purpose=purpose,  # type: ignore[arg-type]
        outcome=outcome,  # type: ignore[arg-type]
        trigger=trigger,  # type: ignore[arg-type]
        cost_usd=None if cost is None else Decimal(cost),
        latency_s=latency_s,
        started_at=at,
    )


def up(from_tier: str, to_tier: str, trigger: str = "validation") -> Move:
    return Move(
        kind="up",
        from_tier=from_tier,
        from_deployment=from_tier,
        to_tier=to_tier,
        to_deployment=to_tier,
        trigger=trigger,  # type: ignore[arg-type]
        reason=trigger,
    )


def call(
    tiers: Sequence[str],
    start: int,
    passes_at: int | None,
    *,
    costs: Sequence[str | None] = (),
    task: str | None = None,
    trigger: str = "validation",
    index: int = 0,
    function: str = FUNCTION,
) -> Receipt:
    """A call that started on ``tiers[start]`` and was answered by ``tiers[passes_at]``
    (None: every tier from the start failed), each tier below it failing with ``trigger``.
    ``costs[i]``: what tier i's attempt cost (default $0.001 each)."""
    end = len(tiers) - 1 if passes_at is None else passes_at
    at = T0 + timedelta(seconds=index)
    attempts, moves = [], []
    for i in range(start, end + 1):
        cost = costs[i] if i < len(costs) else "0.001"
        passed = i == passes_at
        attempts.append(
            attempt(
                tiers[i],
                "answered" if passed else "rejected",
                cost,
                trigger=None if passed else trigger,
                at=at,
            )
        )
        if not passed and i < end:
            moves.append(up(tiers[i], tiers[i + 1], trigger))
    return Receipt(
        function=function,
        task=task,
        outcome="answered" if passes_at is not None else "failed",
        answered_by=None if passes_at is None else tiers[passes_at],
        route=Route(start_tier=tiers[start]),
        attempts=tuple(attempts),
        moves=tuple(moves),
        started_at=at,
        finished_at=at + timedelta(seconds=1),
        latency_s=1.0,
    )
