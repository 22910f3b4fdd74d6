"""The dashboard: one self-contained HTML page of a store's report (inline CSS and SVG,
no script, no font or file from anywhere else: it opens on an offline machine).

``escalate dashboard`` writes it to a file, or serves it on localhost.
"""

from __future__ import annotations

import contextlib
import http.server
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

from escalate._pricing import Price
from escalate.store._dashboard_learning import learning_sections
from escalate.store._html import section as _section
from escalate.store._html import share as _share
from escalate.store._html import table as _table
from escalate.store._html import usd as _usd
from escalate.store._output import summary_lines
from escalate.store._query import Filters, load
from escalate.store._report import Report, build_report
from escalate.store._store import Store
from escalate.store._svg import Bar, bars, rate_line

__all__ = ["SECTIONS", "render_dashboard", "render_report", "serve_dashboard"]

SECTIONS = (
    "funnel",
    "rate-over-time",
    "quality",
    "cost-by-path",
    "savings",
    "reasons",
    "calibration",
)
"""The id of every section of the page (a test checks each is there); the audits' and the
adaptive starts' are on it only with such data (``LEARNING_SECTIONS``)."""

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f6f7f9;
color:#1d2330}
header{background:#1d2330;color:#fff;padding:18px 28px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c8cdd8}main{display:grid;grid-template-columns:repeat(auto-fit,
minmax(560px,1fr));gap:18px;padding:18px 28px}section{background:#fff;border-radius:8px;
padding:14px 18px;box-shadow:0 1px 3px rgba(0,0,0,.08)}section.wide{grid-column:1/-1}
h2{font-size:15px;margin:0 0 10px}table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e6e8ee;vertical-align:top}
th{color:#5b6475;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;gap:14px;flex-wrap:wrap;padding:18px 28px 0}.card{background:#fff;
border-radius:8px;padding:10px 16px;min-width:150px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.card b{display:block;font-size:20px}.card span{color:#5b6475;font-size:12px}
.note{color:#5b6475;font-size:12px;margin:8px 0 0}svg.chart{max-width:100%;height:auto}
svg text{font-size:12px;fill:#1d2330}svg .muted{fill:#7a8294}svg .grid{stroke:#e6e8ee}
svg .band{fill:#3a9d5d;opacity:.15}svg .ceiling{stroke:#d0443e;stroke-dasharray:6 4;
stroke-width:1.5}svg .rate{fill:none;stroke:#2f6fde;stroke-width:2}svg .dot{fill:#2f6fde}
"""


def _funnel(report: Report) -> str:
    total = report.total
    items = [Bar("calls", total.calls, f"{total.calls}", "#5b6475")]
    items.append(
        Bar(
            "escalated",
            total.escalated,
            f"{total.escalated} ({_share(total.escalation_rate)})",
            "#e07b39",
        )
    )
    for tier, count in total.answered_by.items():
        items.append(
            Bar(f"answered by {tier}", count, f"{count} ({count / max(total.calls, 1):.1%})")
        )
    items.append(Bar("best effort", total.best_effort, str(total.best_effort), "#c9a227"))
    items.append(Bar("failed", total.failed, str(total.failed), "#d0443e"))
    return _section(
        "funnel",
        "Escalation funnel",
        bars(items, chart_id="chart-funnel"),
        _table(
            ["function", "calls", "escalated", "answered by", "failed"],
            [
                [
                    f.key,
                    f.calls,
                    _share(f.escalation_rate),
                    ", ".join(f"{t} {n}" for t, n in f.answered_by.items()),
                    f.failed,
                ]
                for f in report.by["function"]
            ],
            table_id="table-funnel",
        ),
    )


def _timeline(store: Store, filters: Filters, buckets: int = 12) -> list[tuple[str, float, int]]:
    """(label, escalation rate, calls) over time: hours when the calls span more than six
    of them, else ``buckets`` equal spans between the first call and the last."""
    calls = load(store, filters).calls
    if not calls:
        return []
    times: list[datetime] = [
        c.started_at if c.started_at.tzinfo else c.started_at.replace(tzinfo=UTC) for c in calls
    ]
    first, last = min(times), max(times)
    span = last - first
    if span > timedelta(hours=6):

        def key(t: datetime) -> str:
            return t.astimezone(UTC).strftime("%m-%d %H:00")
    else:
        width: timedelta = span / buckets or timedelta(seconds=1)

        # Label each span by its start, to the millisecond when spans are shorter than a
        # second: labels that collapsed to the same second merged spans into one point.
        fmt = "%H:%M:%S" if width >= timedelta(seconds=1) else "%H:%M:%S.%f"

        def key(t: datetime) -> str:
            index = min(int((t - first) / width), buckets - 1)
            label = (first + width * index).astimezone(UTC).strftime(fmt)
            return label[:-3] if fmt.endswith("%f") else label

    groups: dict[str, list[bool]] = {}
    for t, call in zip(times, calls, strict=True):
        groups.setdefault(key(t), []).append(bool(call.escalated))
    return [(label, sum(v) / len(v), len(v)) for label, v in sorted(groups.items())]


def _rate(
    report: Report, points: list[tuple[str, float, int]], ceiling: float | None, drift: float
) -> str:
    base = report.total.escalation_rate
    band = (max(base - drift, 0.0), min(base + drift, 1.0)) if report.total.calls else None
    note = (
        f"Escalation rate per period; shaded: the band of +/-{drift:.0%} around the window's "
        f"rate {base:.1%}; dashed: the ceiling {_share(ceiling)}."
    )
    chart = rate_line(points, chart_id="chart-rate", ceiling=ceiling, band=band)
    return _section(
        "rate-over-time",
        "Escalation rate over time",
        chart,
        f'<p class="note">{escape(note)}</p>',
        wide=True,
    )


def _quality(report: Report) -> str:
    items = [Bar(q.tier, q.bad_share or 0.0, _share(q.bad_share)) for q in report.quality]
    return _section(
        "quality",
        "Quality by tier (feedback and regenerations)",
        bars(items, chart_id="chart-quality"),
        _table(
            ["tier", "answers", "rated good", "rated bad", "regenerated", "bad share"],
            [
                [q.tier, q.answers, q.rated_good, q.rated_bad, q.regenerated, _share(q.bad_share)]
                for q in report.quality
            ],
            table_id="table-quality",
        ),
    )


def _paths(report: Report) -> str:
    items = [
        Bar(p.path, float(p.cost_per_call_usd), _usd(p.cost_per_call_usd)) for p in report.paths
    ]
    rows = [
        [
            p.path,
            p.calls,
            _usd(p.known_cost_usd),
            _usd(p.cost_per_call_usd),
            *[
                ("-" if v is None else f"{v * 1000:.1f}")
                for v in (p.latency_p50_s, p.latency_p90_s, p.latency_p99_s)
            ],
        ]
        for p in report.paths
    ]
    return _section(
        "cost-by-path",
        "Cost per call by path",
        bars(items, chart_id="chart-cost"),
        _table(
            ["path", "calls", "USD total", "USD/call", "p50 ms", "p90 ms", "p99 ms"],
            rows,
            table_id="table-cost",
        ),
    )


def _savings(report: Report) -> str:
    items = _saving_bars(report)
    rows = [
        [
            s.function,
            s.calls,
            s.strongest_tier or "-",
            _usd(s.actual_usd),
            _usd(s.always_strongest_usd),
            _share(s.saving_share),
            _share(s.escalation_rate),
            _share(s.break_even_rate),
            s.note or "",
        ]
        for s in report.savings
    ]
    return _section(
        "savings",
        "Savings against always-strongest (estimate)",
        bars(items, chart_id="chart-savings"),
        _table(
            [
                "function",
                "calls",
                "strongest",
                "actual",
                "always-strongest",
                "saving",
                "escalated",
                "break-even",
                "note",
            ],
            rows,
            table_id="table-savings",
        ),
        f'<p class="note">{escape(report.savings_method)} Break-even: the escalation rate at '
        "which the cascade would cost as much as always-strongest.</p>",
        wide=True,
    )


def _saving_bars(report: Report) -> list[Bar]:
    """Each function's cascade cost, then its always-strongest estimate when priced."""
    items: list[Bar] = []
    for s in report.savings:
        items.append(
            Bar(
                f"{s.function.rsplit('.', 1)[-1]}: cascade",
                float(s.actual_usd),
                _usd(s.actual_usd, 4),
                "#2f6fde",
            )
        )
        if s.always_strongest_usd is not None:
            items.append(
                Bar(
                    f"always {s.strongest_tier}",
                    float(s.always_strongest_usd),
                    f"{_usd(s.always_strongest_usd, 4)} (estimate)",
                    "#b0b6c3",
                )
            )
    return items


def _reasons(report: Report) -> str:
    return _section(
        "reasons",
        "Top escalation reasons",
        _table(
            ["trigger", "gate", "reason", "count", "example"],
            [[r.trigger, r.gate or "", r.reason, r.count, r.example] for r in report.reasons],
            table_id="table-reasons",
        ),
        _table(
            ["gate", "rejections", "calls", "escalations"],
            [[g.key, g.rejections, g.calls, g.escalations] for g in report.gates],
            table_id="table-gates",
        ),
    )


def _calibration(report: Report) -> str:
    return _section(
        "calibration",
        "Calibration hints",
        _table(
            ["gate", "verdict", "detail"],
            [[h.gate, h.verdict, h.detail] for h in report.calibration],
            table_id="table-calibration",
        ),
        '<p class="note">From the scores gates kept on the receipts: a prompt to run '
        "<code>escalate calibrate</code> on an evaluation set, not a verdict.</p>",
    )


def render_report(
    report: Report,
    points: list[tuple[str, float, int]],
    *,
    ceiling: float | None = 0.4,
    drift: float = 0.1,
    title: str = "escalate dashboard",
) -> str:
    """The page for a report and its timeline."""
    total = report.total
    saving = report.total_saving
    cards = [
        ("calls", str(total.calls)),
        ("escalated", _share(total.escalation_rate)),
        ("cost", _usd(total.known_cost_usd, 4)),
        ("per call", _usd(total.cost_per_call_usd)),
        ("saving (estimate)", _share(saving.saving_share) if saving else "unknown"),
    ]
    card_html = "".join(
        f'<div class="card"><b>{escape(v)}</b><span>{escape(k)}</span></div>' for k, v in cards
    )
    summary = " ".join(escape(line) for line in summary_lines(report))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p>{escape(report.filters.describe())}; generated "
        f"{report.generated_at.isoformat(timespec='seconds')}</p></header>"
        f'<div class="cards" id="cards">{card_html}</div>'
        f"<main>{_funnel(report)}{_quality(report)}{_rate(report, points, ceiling, drift)}"
        f"{_paths(report)}{_reasons(report)}{_savings(report)}{_calibration(report)}"
        f"{learning_sections(report)}</main>"
        f'<footer class="note" style="padding:0 28px 18px">{summary}</footer></body></html>'
    )


def render_dashboard(
    store: Store,
    filters: Filters | None = None,
    *,
    prices: Mapping[str, Price] | None = None,
    ceiling: float | None = 0.4,
    drift: float = 0.1,
) -> str:
    """The dashboard of the calls ``filters`` select, as one HTML page."""
    filters = filters or Filters()
    report = build_report(store, filters, prices=prices)
    return render_report(report, _timeline(store, filters), ceiling=ceiling, drift=drift)


def serve_dashboard(html: str, *, port: int = 8765, host: str = "127.0.0.1") -> None:
    """Serve the page on localhost until interrupted."""
    body = html.encode("utf-8")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    with http.server.ThreadingHTTPServer((host, port), Handler) as server:
        print(f"escalate dashboard on http://{host}:{port}/ (Ctrl-C stops it)")
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
