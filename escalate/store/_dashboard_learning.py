"""The dashboard's sections on what the cascade learns from: the audits' false passes
(each tier's and gate's rate with its 95% Wilson interval, and what the audits cost) and
the adaptive starts (each task class's start tiers and its cheap tier's pass rate with
its 90% interval). Each is on the page only when the report has such data."""

from __future__ import annotations

from html import escape

from escalate.store._audits import FalsePass
from escalate.store._figures import AdaptiveClass
from escalate.store._html import section, share, table, usd
from escalate.store._report import Report
from escalate.store._svg import Interval, interval_bars

__all__ = ["LEARNING_SECTIONS", "learning_sections"]

LEARNING_SECTIONS = ("audits", "adaptive-starts")
"""The ids of the sections shown only when the report has audits or adaptive starts."""


def _span(low: float | None, high: float | None) -> str:
    return "-" if low is None or high is None else f"{share(low)}-{share(high)}"


def _of(part: int, whole: int) -> str:
    return f"{part} of {whole}"


def _rate_label(rate: FalsePass) -> str:
    return f"{rate.scope} {rate.name}"


def _audits(report: Report) -> str:
    a = report.audits
    items = [
        Interval(
            _rate_label(r),
            r.rate or 0.0,
            r.interval[0],
            r.interval[1],
            f"{share(r.rate)} ({_of(r.disagreed, r.audited)})",
            "#d0443e" if r.scope == "tier" else "#e07b39",
        )
        for r in a.rates
        if r.interval is not None
    ]
    rows = [
        [
            r.scope,
            r.name,
            _of(r.disagreed, r.audited),
            share(r.rate),
            _span(*(r.interval or (None, None))),
            r.unknown,
        ]
        for r in a.rates
    ]
    unknown_cost = f"; {a.unknown_cost} with a cost unknown" if a.unknown_cost else ""
    note = (
        f"{a.audits} audit(s) of answers that passed: {a.agreed} agreed, {a.disagreed} "
        f"disagreed, {a.unknown} without a verdict (left out of every rate). The audits cost "
        f"{usd(a.known_cost_usd)} ({usd(a.cost_per_audit_usd)} per audit){unknown_cost}. A "
        "false pass is the auditing tier's disagreement, not ground truth; whiskers: the "
        "95% Wilson interval."
    )
    return section(
        "audits",
        "Audits: false passes",
        interval_bars(items, chart_id="chart-audits"),
        table(
            ["scope", "name", "false passes", "rate", "95% interval", "no verdict"],
            rows,
            table_id="table-audits",
        ),
        f'<p class="note" id="audits-cost">{escape(note)}</p>',
    )


def _class_label(a: AdaptiveClass) -> str:
    name = a.function.rsplit(".", 1)[-1]
    return name if a.task is None else f"{name}/{a.task}"


def _adaptive(report: Report) -> str:
    items = [
        Interval(
            f"{_class_label(a)}: {a.cheap_tier or '-'}",
            a.pass_rate,
            a.low,
            a.high,
            f"{share(a.pass_rate)} ({_of(a.passes, a.passes + a.fails)})",
            "#3a9d5d",
        )
        for a in report.adaptive
        if a.pass_rate is not None and a.low is not None and a.high is not None
    ]
    rows = [
        [
            a.function,
            a.task or "",
            a.calls,
            a.adaptive_calls,
            ", ".join(f"{tier} {share(a.start_share(tier))}" for tier in a.starts),
            a.explored,
            a.cheap_tier or "-",
            _of(a.passes, a.passes + a.fails),
            share(a.pass_rate),
            _span(a.low, a.high),
            a.latest or "",
        ]
        for a in report.adaptive
    ]
    return section(
        "adaptive-starts",
        "Adaptive starts",
        interval_bars(items, chart_id="chart-adaptive"),
        table(
            [
                "function",
                "task",
                "calls",
                "adaptive",
                "start tiers",
                "explored",
                "cheap tier",
                "cheap passes",
                "pass rate",
                "90% interval",
                "latest decision",
            ],
            rows,
            table_id="table-adaptive",
        ),
        '<p class="note">Per task class that started adaptively: the share of its calls '
        "started on each tier, and its cheapest tier's pass rate over the window (a uniform "
        "prior, undecayed); whiskers: the 90% credible interval.</p>",
        wide=True,
    )


def learning_sections(report: Report) -> str:
    """The audits' and the adaptive starts' sections, each only when there is such data."""
    parts = []
    if report.audits.audits:
        parts.append(_audits(report))
    if report.adaptive:
        parts.append(_adaptive(report))
    return "".join(parts)
