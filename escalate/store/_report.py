"""The report: what a window of stored receipts says about a cascade.

:func:`build_report` reads the rows of the calls in a window (see ``_query``) and computes
every figure in Python from them, so the figures are the same on SQLite and PostgreSQL
and equal what the receipts themselves say (a test holds them equal).
"""

from __future__ import annotations

import operator
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from escalate._pricing import Price
from escalate.store._audits import AuditSummary, audit_summary
from escalate.store._calibration import hints
from escalate.store._figures import (
    AdaptiveClass,
    CalibrationHint,
    Firing,
    Funnel,
    PathCost,
    Quality,
    ReasonCount,
    Saving,
    percentile,
)
from escalate.store._query import Filters, Loaded, load
from escalate.store._savings import (
    METHOD,
    Rate,
    break_even_rate,
    first_request_tokens,
    strongest_tier,
    tier_rate,
)
from escalate.store._starts import adaptive_classes
from escalate.store._store import Store

__all__ = ["DIMENSIONS", "Report", "build_report"]

DIMENSIONS = ("function", "task", "path", "hour", "start_tier")
_NOT_ANSWERED = ("failed", "error", "cancelled")


@dataclass
class Report:
    """Every figure of one report. ``as_dict()`` is the JSON output."""

    filters: Filters
    generated_at: datetime
    total: Funnel
    by: dict[str, list[Funnel]]
    gates: list[Firing]
    triggers: list[Firing]
    paths: list[PathCost]
    savings: list[Saving]
    quality: list[Quality]
    reasons: list[ReasonCount]
    calibration: list[CalibrationHint]
    hourly: list[Funnel] = field(default_factory=list)
    """Escalation by clock hour (``YYYY-MM-DDTHH``), oldest first: the rate over time."""
    savings_method: str = METHOD
    adaptive: list[AdaptiveClass] = field(default_factory=list)
    """Task classes that started adaptively: their start tiers and cheap pass rate."""
    audits: AuditSummary = field(default_factory=AuditSummary)
    """The audits of what passed: their verdicts, cost, each tier's and gate's false passes."""

    @property
    def total_saving(self) -> Saving | None:
        priced = [s for s in self.savings if s.always_strongest_usd is not None]
        if not priced:
            return None
        actual = sum((s.actual_usd for s in priced), Decimal(0))
        strongest = sum((s.always_strongest_usd or Decimal(0) for s in priced), Decimal(0))
        return Saving(
            "(all functions)",
            sum(s.calls for s in priced),
            None,
            None,
            None,
            sum(s.priced_calls for s in priced),
            actual,
            strongest,
            sum(s.escalation_rate * s.calls for s in priced) / max(sum(s.calls for s in priced), 1),
            None,
        )

    def as_dict(self) -> dict[str, Any]:
        total = self.total_saving
        return {
            "filters": self.filters.describe(),
            "generated_at": self.generated_at.isoformat(),
            "total": self.total.as_dict(),
            "by": {name: [f.as_dict() for f in rows] for name, rows in self.by.items()},
            "hourly": [f.as_dict() for f in self.hourly],
            "gates": [f.as_dict() for f in self.gates],
            "triggers": [f.as_dict() for f in self.triggers],
            "paths": [p.as_dict() for p in self.paths],
            "savings": [s.as_dict() for s in self.savings],
            "total_saving": None if total is None else total.as_dict(),
            "savings_method": self.savings_method,
            "quality": [q.as_dict() for q in self.quality],
            "reasons": [r.as_dict() for r in self.reasons],
            "calibration": [h.as_dict() for h in self.calibration],
            "adaptive": [a.as_dict() for a in self.adaptive],
            "audits": self.audits.as_dict(),
        }


def _funnels(calls: Iterable[Any], key: Callable[[Any], object]) -> list[Funnel]:
    groups: dict[str, Funnel] = {}
    for call in calls:
        name = key(call)
        label = "(none)" if name is None else str(name)
        groups.setdefault(label, Funnel(label)).add(call)
    return sorted(groups.values(), key=lambda f: (-f.calls, f.key))


def _firings(data: Loaded, field_name: str) -> list[Firing]:
    found: dict[str, Firing] = {}
    for call_id, attempts in data.attempts.items():
        seen: set[str] = set()
        for a in attempts:
            name = getattr(a, field_name)
            if a.outcome != "rejected" or name is None or a.purpose == "audit":
                continue
            firing = found.setdefault(name, Firing(name))
            firing.rejections += 1
            if name not in seen:
                firing.calls += 1
                seen.add(name)
        for m in data.moves.get(call_id, ()):
            name = getattr(m, field_name)
            if m.kind == "up" and name is not None:
                found.setdefault(name, Firing(name)).escalations += 1
    return sorted(found.values(), key=lambda f: (-f.rejections, f.key))


def _paths(calls: list[Any]) -> list[PathCost]:
    groups: dict[str, list[Any]] = defaultdict(list)
    for call in calls:
        groups[call.path].append(call)
    rows = []
    for path, members in groups.items():
        cost = sum((c.known_cost_usd for c in members), Decimal(0))
        latencies = [c.latency_s for c in members]
        rows.append(
            PathCost(
                path,
                len(members),
                cost,
                cost / len(members),
                percentile(latencies, 50),
                percentile(latencies, 90),
                percentile(latencies, 99),
            )
        )
    return sorted(rows, key=lambda p: (-p.calls, p.path))


def _savings(data: Loaded, prices: Mapping[str, Price]) -> list[Saving]:
    by_function: dict[str, list[Any]] = defaultdict(list)
    for call in data.calls:
        by_function[call.function].append(call)
    return [
        _saving(function, calls, data, prices) for function, calls in sorted(by_function.items())
    ]


def _rate(strongest: str | None, attempts: list[Any], prices: Mapping[str, Price]) -> Rate | None:
    if strongest is None:
        return None
    if strongest in prices:
        return Rate(strongest, None, "given price", prices[strongest])
    return tier_rate(strongest, attempts)


def _saving(function: str, calls: list[Any], data: Loaded, prices: Mapping[str, Price]) -> Saving:
    attempts = [a for c in calls for a in data.attempts.get(c.id, ())]
    ups = [
        (m.from_tier, m.to_tier) for c in calls for m in data.moves.get(c.id, ()) if m.kind == "up"
    ]
    # An audit asks a stronger tier too: a cascade whose audited answers never escalated
    # still has its auditing tier above them (and the audits' attempts price it).
    ups += [(row.of_tier, row.tier) for c in calls if (row := data.audits.get(c.id)) is not None]
    strongest = strongest_tier((c.path for c in calls), ups)
    rate = _rate(strongest, attempts, prices)
    actual = sum((c.known_cost_usd for c in calls), Decimal(0))
    escalation = sum(bool(c.escalated) for c in calls) / len(calls)
    if rate is None or rate.price is None:
        unpriced = (
            f"no price known for the strongest tier {strongest!r}: no estimate "
            "(give its price: --price TIER=IN,OUT per million tokens)"
        )
        return Saving(
            function,
            len(calls),
            strongest,
            None if rate is None else rate.model,
            None,
            0,
            actual,
            None,
            escalation,
            None,
            unpriced,
        )
    priced, estimate, actual_priced, cheap = _priced(calls, data, rate, strongest)
    missing = len(calls) - priced
    note = f"{missing} call(s) reported no tokens: left out" if missing else None
    breakeven = break_even_rate(cheap / priced, estimate / priced) if priced else None
    return Saving(
        function,
        len(calls),
        strongest,
        rate.model,
        rate.source,
        priced,
        actual_priced,
        estimate if priced else None,
        escalation,
        breakeven,
        note,
    )


def _priced(
    calls: list[Any], data: Loaded, rate: Rate, strongest: str | None
) -> tuple[int, Decimal, Decimal, Decimal]:
    """Over the calls whose first request reported tokens: how many, the always-strongest
    estimate, their actual cost, and what their cheaper tiers cost."""
    priced = 0
    estimate = Decimal(0)
    actual_priced = Decimal(0)
    cheap = Decimal(0)
    for call in calls:
        own = data.attempts.get(call.id, [])
        cost = rate.cost(*first_request_tokens(own))
        if cost is None:
            continue
        priced += 1
        estimate += cost
        actual_priced += call.known_cost_usd
        cheap += sum((a.cost_usd or 0 for a in own if a.tier != strongest), Decimal(0))
    return priced, estimate, actual_priced, cheap


def _regenerated(data: Loaded) -> dict[str, str]:
    """regenerated call -> its regeneration: the explicit link, else (``options(reason=
    "regenerate")`` alone) the previous call of the same function and task."""
    links = dict(data.regenerated)
    last: dict[tuple[str, str | None], str] = {}
    for call in data.calls:
        key = (call.function, call.task)
        if call.route_reason == "regenerate" and call.regenerates is None and key in last:
            links.setdefault(last[key], call.id)
        last[key] = call.id
    return links


def _quality(data: Loaded) -> list[Quality]:
    tiers: dict[str, Quality] = {}
    regenerated = _regenerated(data)
    for call in data.calls:
        if call.answered_by is None:
            continue
        q = tiers.setdefault(call.answered_by, Quality(call.answered_by))
        q.answers += 1
        verdicts = data.feedback.get(call.id, [])
        if verdicts:
            latest = verdicts[-1]
            q.rated_good += bool(latest.good)
            q.rated_bad += not latest.good
        elif call.id in regenerated:
            q.regenerated += 1
    return sorted(tiers.values(), key=lambda q: (-q.answers, q.tier))


def _reasons(data: Loaded, top: int) -> list[ReasonCount]:
    """Moves up by trigger, gate and the kind of reason (see :func:`reason_kind`), most
    frequent first, each with one reason in full as its example."""
    counts: Counter[tuple[str, str | None, str]] = Counter()
    examples: dict[tuple[str, str | None, str], str] = {}
    for moves in data.moves.values():
        for m in moves:
            if m.kind == "up":
                key = (m.trigger, m.gate, reason_kind(m.reason, m.gate))
                counts[key] += 1
                examples.setdefault(key, _first_line(m.reason))
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1] or "", kv[0][2]))
    return [ReasonCount(t, g, r, n, examples[(t, g, r)]) for (t, g, r), n in ordered[:top]]


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def reason_kind(reason: str, gate: str | None = None) -> str:
    """What kind of reason this is, without its particulars: the gate's name prefix
    dropped, the text up to its first colon, numbers as ``N`` (``"wrong arithmetic"``,
    ``"the answer N is not a whole non-negative number"``)."""
    text = " ".join(reason.split())
    if gate and text.startswith(gate + ":"):
        text = text[len(gate) + 1 :].strip()
    head = text.split(":", 1)[0].strip() or text
    return _first_line(_NUMBER.sub("N", head), 120)


def _first_line(reason: str, limit: int = 160) -> str:
    line = " ".join(reason.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _hour_of(call: Any) -> str:
    started: datetime = call.started_at
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return started.astimezone(UTC).strftime("%Y-%m-%dT%H")


def build_report(
    store: Store,
    filters: Filters | None = None,
    *,
    top: int = 10,
    prices: Mapping[str, Price] | None = None,
) -> Report:
    """The report over the calls ``filters`` select (all calls when None). ``prices``:
    tier name -> :class:`~escalate.Price`, for a strongest tier whose price the receipts
    cannot tell (the saving is otherwise unknown for it)."""
    filters = filters or Filters()
    data = load(store, filters)
    total = Funnel("(all calls)")
    for call in data.calls:
        total.add(call)
    by = {name: _funnels(data.calls, operator.attrgetter(name)) for name in DIMENSIONS}
    return Report(
        filters=filters,
        generated_at=datetime.now(UTC),
        total=total,
        by=by,
        hourly=sorted(_funnels(data.calls, _hour_of), key=lambda f: f.key),
        gates=_firings(data, "gate"),
        triggers=_firings(data, "trigger"),
        paths=_paths(data.calls),
        savings=_savings(data, prices or {}),
        quality=_quality(data),
        reasons=_reasons(data, top),
        calibration=hints(data),
        adaptive=adaptive_classes(data, store, filters.where()),
        audits=audit_summary(data),
    )
