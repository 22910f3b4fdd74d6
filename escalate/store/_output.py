"""A report as a terminal table (rich), JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import IO, Any

from escalate.store._figures import AdaptiveClass, Funnel
from escalate.store._report import Report

__all__ = ["print_report", "report_csv", "report_json", "summary_lines"]

_Section = tuple[str, list[str], list[list[str]]]
"""A table of the report: its title, its header, its rows."""


def _default(value: object) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def report_json(report: Report, *, indent: int | None = 2) -> str:
    """The report as JSON: amounts in USD are decimal strings (exact)."""
    return json.dumps(report.as_dict(), default=_default, indent=indent)


def _usd(value: Decimal | None, digits: int = 6) -> str:
    return "unknown" if value is None else f"${value:.{digits}f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _tiers(report: Report) -> list[str]:
    seen: dict[str, None] = {}
    for funnel in (report.total, *report.by["function"]):
        seen.update(dict.fromkeys(funnel.answered_by))
    return list(seen)


def _funnel_row(f: Funnel, tiers: Sequence[str]) -> list[str]:
    return [
        f.key,
        str(f.calls),
        _share(f.escalation_rate),
        *[str(f.answered_by.get(t, 0)) for t in tiers],
        str(f.best_effort),
        str(f.failed),
        _usd(f.cost_per_call_usd),
    ]


def _sections(report: Report) -> Iterable[_Section]:
    """(title, header, rows) of every table of the report, in order."""
    tiers = _tiers(report)
    head = ["calls", "escalated", *[f"by {t}" for t in tiers], "best effort", "failed", "USD/call"]
    yield "Total", ["", *head], [_funnel_row(report.total, tiers)]
    for name, rows in report.by.items():
        yield f"By {name.replace('_', ' ')}", [name, *head], [_funnel_row(f, tiers) for f in rows]
    for title, firings in (("Gates", report.gates), ("Triggers", report.triggers)):
        yield (
            title,
            [title[:-1].lower(), "rejections", "calls", "escalations"],
            [[f.key, str(f.rejections), str(f.calls), str(f.escalations)] for f in firings],
        )
    yield _paths(report)
    yield _adaptive(report)
    yield _savings(report)
    yield _quality(report)
    yield (
        "Top escalation reasons",
        ["trigger", "gate", "reason", "count", "example"],
        [[r.trigger, r.gate or "", r.reason, str(r.count), r.example] for r in report.reasons],
    )
    yield (
        "Calibration hints",
        ["gate", "verdict", "detail"],
        [[h.gate, h.verdict, h.detail] for h in report.calibration],
    )
    yield from _audits(report)


def _audits(report: Report) -> Iterable[_Section]:
    a = report.audits
    yield (
        "Audits of what passed",
        ["audits", "agreed", "disagreed", "no verdict", "USD total", "USD/audit"],
        [
            [
                str(a.audits),
                str(a.agreed),
                str(a.disagreed),
                str(a.unknown),
                _usd(a.known_cost_usd),
                _usd(a.cost_per_audit_usd),
            ]
        ]
        if a.audits
        else [],
    )
    yield (
        "False-pass rate by tier and gate (audits that disagreed; 95% Wilson interval)",
        ["scope", "name", "audited", "disagreed", "rate", "95% low", "95% high", "no verdict"],
        [
            [
                r.scope,
                r.name,
                str(r.audited),
                str(r.disagreed),
                _share(r.rate),
                *(
                    ("-", "-")
                    if r.interval is None
                    else (_share(r.interval[0]), _share(r.interval[1]))
                ),
                str(r.unknown),
            ]
            for r in a.rates
        ],
    )


def _paths(report: Report) -> _Section:
    return (
        "Cost and latency by path",
        ["path", "calls", "USD total", "USD/call", "p50 s", "p90 s", "p99 s"],
        [
            [
                p.path,
                str(p.calls),
                _usd(p.known_cost_usd),
                _usd(p.cost_per_call_usd),
                *[
                    ("-" if v is None else f"{v:.3f}")
                    for v in (p.latency_p50_s, p.latency_p90_s, p.latency_p99_s)
                ],
            ]
            for p in report.paths
        ],
    )


def _adaptive(report: Report) -> _Section:
    def interval(a: AdaptiveClass) -> str:
        if a.pass_rate is None or a.low is None or a.high is None:
            return "-"
        calls = a.passes + a.fails
        return f"{a.pass_rate:.0%} (90%: {a.low * 100:.0f}-{a.high:.0%}, {calls} calls)"

    return (
        "Adaptive starts by task class",
        [
            "function",
            "task",
            "calls",
            "adaptive",
            "start tier",
            "explored",
            "cheap tier",
            "cheap passes",
            "latest decision",
        ],
        [
            [
                a.function,
                a.task or "",
                str(a.calls),
                str(a.adaptive_calls),
                ", ".join(f"{t} {a.start_share(t):.0%}" for t in a.starts),
                str(a.explored),
                a.cheap_tier or "-",
                interval(a),
                a.latest or "",
            ]
            for a in report.adaptive
        ],
    )


def _savings(report: Report) -> _Section:
    savings = list(report.savings)
    if report.total_saving is not None and len(savings) > 1:
        savings.append(report.total_saving)
    return (
        "Saving against always-strongest (estimate)",
        [
            "function",
            "calls",
            "strongest",
            "USD actual",
            "USD always-strongest",
            "saving",
            "escalated",
            "break-even",
            "note",
        ],
        [
            [
                s.function,
                str(s.calls),
                f"{s.strongest_tier or '-'} ({s.strongest_model or '?'})",
                _usd(s.actual_usd),
                _usd(s.always_strongest_usd),
                _share(s.saving_share),
                _share(s.escalation_rate),
                _share(s.break_even_rate),
                s.note or "",
            ]
            for s in savings
        ],
    )


def _quality(report: Report) -> _Section:
    return (
        "Quality by tier (feedback and regenerations)",
        [
            "tier",
            "answers",
            "rated good",
            "rated bad",
            "regenerated",
            "bad share",
        ],
        [
            [
                q.tier,
                str(q.answers),
                str(q.rated_good),
                str(q.rated_bad),
                str(q.regenerated),
                _share(q.bad_share),
            ]
            for q in report.quality
        ],
    )


def report_csv(report: Report) -> str:
    """Every table as CSV, one after another, each headed by a ``# title`` line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for title, header, rows in _sections(report):
        writer.writerow([f"# {title}"])
        writer.writerow(header)
        writer.writerows(rows)
        writer.writerow([])
    writer.writerow([f"# {report.savings_method}"])
    return buffer.getvalue()


def summary_lines(report: Report) -> list[str]:
    """A few lines: calls, escalation, cost, saving (the demo prints these)."""
    t = report.total
    lines = [
        f"{t.calls} calls ({report.filters.describe()}): {t.escalation_rate:.1%} escalated; "
        + ", ".join(f"{n} answered by {tier}" for tier, n in t.answered_by.items())
        + f", {t.best_effort} best effort, {t.failed} failed",
        f"cost {_usd(t.known_cost_usd)} in all, {_usd(t.cost_per_call_usd)} per call"
        + (f" ({t.unknown_cost_calls} call(s) of unknown cost)" if t.unknown_cost_calls else ""),
    ]
    audits = report.audits
    if audits.audits:
        lines.append(
            f"{audits.audits} audit(s) of what passed: {audits.disagreed} disagreed, "
            f"{audits.unknown} without a verdict, cost {_usd(audits.known_cost_usd)}"
        )
    saving = report.total_saving
    if saving is not None and saving.always_strongest_usd is not None:
        lines.append(
            f"always-strongest would have cost about {_usd(saving.always_strongest_usd)}: "
            f"a saving of about {_share(saving.saving_share)} (estimate: the calls' own tokens "
            "priced at the strongest tier)"
        )
    return lines


def print_report(report: Report, file: IO[str] | None = None, *, width: int | None = None) -> None:
    """The report as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file, width=width or 160, soft_wrap=False)
    console.print(f"[bold]escalate report[/bold]: {report.filters.describe()}")
    for line in summary_lines(report):
        console.print(line, highlight=False)
    for title, header, rows in _sections(report):
        table = Table(title=title, title_justify="left", show_lines=False)
        for name in header:
            table.add_column(name, overflow="fold")
        for row in rows:
            table.add_row(*row)
        if not rows:
            table.add_row(*["-"] * len(header))
        console.print(table)
    console.print(report.savings_method, highlight=False)
