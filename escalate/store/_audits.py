"""What the audits say: each tier's and each gate's measured false-pass rate, with a 95%
Wilson interval, the audits' own cost, and the disagreements as labels.

A *false pass* is an audited answer the auditing tier disagreed with: the answer passed
every gate on its tier, and the stronger tier's answer has another key. For a tier the
rate is over the audits of the answers it gave; for a gate, over the audits of the
answers that passed it (on any tier). Audits with no verdict (the audit's request failed,
or its answer did not validate) are counted apart and left out of every rate: they say
nothing about the answer.

The rate is the auditing tier's disagreement, not ground truth: the stronger tier is
wrong sometimes too, so read it as an upper bound on the cheap tier's error where the
strong tier is rarely wrong, and as a disagreement rate otherwise.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

import escalate.store._schema as s
from escalate.store._query import Filters, Loaded
from escalate.store._store import Store

__all__ = ["AuditLabel", "AuditSummary", "FalsePass", "audit_labels", "audit_summary", "wilson"]

Z_95 = 1.959963984540054
"""The standard normal quantile of 0.975: a two-sided 95% interval."""


def wilson(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a binomial proportion (95% by default); ``None`` for
    no trials. Unlike the normal approximation it stays inside [0, 1] and is honest at
    0 of n and n of n, the usual case for a rare false pass."""
    if trials <= 0:
        return None
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class FalsePass:
    """One tier's or one gate's audits: how many had a verdict, how many disagreed."""

    scope: str
    """``tier`` (the tier that gave the audited answer) or ``gate`` (a gate it passed)."""
    name: str
    audited: int = 0
    """Audits with a verdict (agreed or not)."""
    disagreed: int = 0
    unknown: int = 0
    """Audits with no verdict: left out of the rate."""

    @property
    def rate(self) -> float | None:
        """Audits that disagreed over audits with a verdict; ``None`` with none."""
        return self.disagreed / self.audited if self.audited else None

    @property
    def interval(self) -> tuple[float, float] | None:
        """The rate's 95% Wilson interval."""
        return wilson(self.disagreed, self.audited)

    def add(self, agreed: bool | None) -> None:
        if agreed is None:
            self.unknown += 1
            return
        self.audited += 1
        self.disagreed += not agreed

    def as_dict(self) -> dict[str, Any]:
        low, high = self.interval or (None, None)
        return {**asdict(self), "rate": self.rate, "low": low, "high": high}


@dataclass
class AuditSummary:
    """Every audit a report covers: their verdicts, their cost, the false-pass rates."""

    audits: int = 0
    agreed: int = 0
    disagreed: int = 0
    unknown: int = 0
    known_cost_usd: Decimal = Decimal(0)
    """What the audits' own requests cost (it is in the calls' cost too)."""
    unknown_cost: int = 0
    """Audits one of whose attempts' cost is unknown."""
    rates: list[FalsePass] = field(default_factory=list)
    """Each tier's rate, then each gate's, most audited first."""

    @property
    def cost_per_audit_usd(self) -> Decimal | None:
        return self.known_cost_usd / self.audits if self.audits else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "audits": self.audits,
            "agreed": self.agreed,
            "disagreed": self.disagreed,
            "unknown": self.unknown,
            "known_cost_usd": self.known_cost_usd,
            "cost_per_audit_usd": self.cost_per_audit_usd,
            "unknown_cost": self.unknown_cost,
            "rates": [rate.as_dict() for rate in self.rates],
        }


def audit_summary(data: Loaded) -> AuditSummary:
    """The audits of the calls ``data`` holds."""
    summary = AuditSummary()
    tiers: dict[str, FalsePass] = {}
    gates: dict[str, FalsePass] = {}
    for call in data.calls:
        row = data.audits.get(call.id)
        if row is None:
            continue
        summary.audits += 1
        if row.agreed is None:
            summary.unknown += 1
        elif row.agreed:
            summary.agreed += 1
        else:
            summary.disagreed += 1
        summary.known_cost_usd += row.known_cost_usd
        summary.unknown_cost += row.cost_usd is None
        tiers.setdefault(row.of_tier, FalsePass("tier", row.of_tier)).add(row.agreed)
        for gate in json.loads(row.gates):
            gates.setdefault(gate, FalsePass("gate", gate)).add(row.agreed)
    summary.rates = [*_ordered(tiers.values()), *_ordered(gates.values())]
    return summary


def _ordered(rates: Iterable[FalsePass]) -> list[FalsePass]:
    return sorted(rates, key=lambda r: (-(r.audited + r.unknown), r.name))


@dataclass(frozen=True)
class AuditLabel:
    """One audited answer as a label: the answer the call returned, the auditing tier's,
    and whether they agreed (``False``: the answer is a false pass, a negative label)."""

    receipt_id: str
    function: str
    task: str | None
    started_at: datetime
    tier: str
    """The tier whose returned answer was audited."""
    auditor: str
    """The auditing tier."""
    agreed: bool | None
    key: str | None
    answer_key: str | None
    audit_key: str | None
    answer_raw: str | None
    """The returned answer, as the model produced it."""
    audit_raw: str | None
    """The auditing tier's answer, as it produced it."""
    gates: tuple[str, ...]
    """The gates the answer passed."""


def audit_labels(
    store: Store | str | Path,
    *,
    function: str | None = None,
    task: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    disagreed_only: bool = False,
    with_verdict: bool = True,
) -> list[AuditLabel]:
    """The stored audits as labels, oldest first: by default every audit with a verdict
    (``disagreed_only``: the false passes alone; ``with_verdict=False``: those whose audit
    got no answer too). ``function`` is a ``module.qualname`` or its last part, as in a
    report's filters."""
    opened = store if isinstance(store, Store) else Store(store)
    where = Filters(since=since, until=until, function=function, task=task).where()
    a, c = s.audits.c, s.calls.c
    query = (
        select(*a, c.function, c.task, c.started_at)
        .join(s.calls, c.id == a.call_id)
        .where(where)
        .order_by(c.started_at, c.id)
    )
    if disagreed_only:
        query = query.where(a.agreed.is_(False))
    elif with_verdict:
        query = query.where(a.agreed.is_not(None))
    try:
        with opened.engine.connect() as connection:
            rows = list(connection.execute(query))
    finally:
        if opened is not store:
            opened.close()
    return [
        AuditLabel(
            receipt_id=row.call_id,
            function=row.function,
            task=row.task,
            started_at=row.started_at,
            tier=row.of_tier,
            auditor=row.tier,
            agreed=row.agreed,
            key=row.key,
            answer_key=row.answer_key,
            audit_key=row.audit_key,
            answer_raw=row.answer_raw,
            audit_raw=row.audit_raw,
            gates=tuple(json.loads(row.gates)),
        )
        for row in rows
    ]
