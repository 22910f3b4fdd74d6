"""The store's commands: ``escalate report``, ``escalate dashboard``, ``escalate store``.

The parsers are built without importing the store (SQLAlchemy); each command imports it
when it runs.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from escalate.store import Filters, Store, Watch

__all__ = ["add_store_commands", "run_store_command"]

STORE_COMMANDS = ("report", "dashboard", "store")
_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def duration(text: str) -> timedelta:
    match = _SPAN.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90m, 24h, 7d)")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def moment(text: str) -> datetime:
    """An ISO date or time (UTC unless it says otherwise), or a duration ago (``7d``)."""
    if _SPAN.match(text.strip()):
        return datetime.now(UTC) - duration(text)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date: {text!r} (2026-01-31, 2026-01-31T12:00, or 7d for 7 days ago)"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"a tag is KEY=VALUE, got {text!r}")
    return key, value


def _price(text: str) -> tuple[str, tuple[Decimal, Decimal]]:
    tier, sep, rates = text.partition("=")
    parts = rates.split(",")
    try:
        if not sep or len(parts) != 2:
            raise InvalidOperation
        return tier, (Decimal(parts[0]), Decimal(parts[1]))
    except InvalidOperation:
        raise argparse.ArgumentTypeError(
            f"a price is TIER=INPUT,OUTPUT in USD per million tokens, got {text!r}"
        ) from None


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", help="the store's URL or SQLite file (default: $ESCALATE_STORE)")
    chosen = parser.add_argument_group("which calls")
    chosen.add_argument("--since", type=moment, help="ISO date/time, or 7d (7 days ago)")
    chosen.add_argument("--until", type=moment, help="ISO date/time, or 1h (an hour ago)")
    chosen.add_argument("--function", help="module.qualname, or its last part")
    chosen.add_argument("--task", help="the task class")
    chosen.add_argument("--tag", type=_tag, action="append", default=[], help="KEY=VALUE")
    parser.add_argument(
        "--price",
        type=_price,
        action="append",
        default=[],
        metavar="TIER=IN,OUT",
        help="the strongest tier's price per million tokens, when the receipts cannot tell it",
    )


def add_store_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser(
        "report", help="what the stored receipts say: escalation, cost, savings, quality"
    )
    _common(report)
    report.add_argument("--format", choices=("table", "json", "csv"), default="table")
    report.add_argument("--top", type=int, default=10, help="escalation reasons to list")
    watch = report.add_argument_group("--check: exit 1 while an alert holds (for cron and CI)")
    watch.add_argument("--check", action="store_true")
    watch.add_argument("--window", type=duration, default=timedelta(hours=1))
    watch.add_argument("--ceiling", type=float, default=0.4, help="highest escalation rate")
    watch.add_argument("--drift", type=float, help="points off the baseline rate allowed")
    watch.add_argument("--baseline", type=float, help="the baseline rate (default: measured)")
    watch.add_argument("--min-cheap-quality", type=float, help="lowest good share of feedback")
    watch.add_argument("--budget-per-hour", type=Decimal, help="USD per hour")
    watch.add_argument("--min-calls", type=int, default=20)

    dashboard = commands.add_parser(
        "dashboard", help="one self-contained HTML page of the stored receipts"
    )
    _common(dashboard)
    dashboard.add_argument("--out", default="escalate-dashboard.html", help="the HTML file")
    dashboard.add_argument("--serve", action="store_true", help="serve it on localhost")
    dashboard.add_argument("--port", type=int, default=8765)
    dashboard.add_argument("--ceiling", type=float, default=0.4, help="the band's ceiling")

    store = commands.add_parser("store", help="export receipts, or delete old ones")
    store.add_argument("action", choices=("export", "prune", "stats"))
    store.add_argument("--store", help="the store's URL or SQLite file (default: $ESCALATE_STORE)")
    store.add_argument("--before", type=moment, help="receipts of calls started before this")
    store.add_argument("--since", type=moment, help="export: from this date on")
    store.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    store.add_argument("--out", help="export: the file (default: standard output)")


def _open(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Store:
    url = args.store or os.environ.get("ESCALATE_STORE")
    if not url:
        parser.error("which store? --store sqlite:///receipts.db (or set ESCALATE_STORE)")
    try:
        from escalate.store import Store
    except ModuleNotFoundError as error:
        parser.error(f"the store needs its extra: pip install 'escalate[store]' ({error})")
    return Store(url)


def _filters(args: argparse.Namespace) -> Filters:
    from escalate.store import Filters

    return Filters(args.since, args.until, args.function, args.task, dict(args.tag))


def _prices(args: argparse.Namespace) -> dict[str, Any]:
    from escalate import Price

    return {tier: Price(input=i, output=o) for tier, (i, o) in args.price}


def run_store_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    store = _open(parser, args)
    try:
        if args.command == "report":
            return _report(store, args)
        if args.command == "dashboard":
            return _dashboard(store, args)
        return _store(parser, store, args)
    finally:
        store.close()


def _report(store: Store, args: argparse.Namespace) -> int:
    from escalate import store as st

    report = st.build_report(store, _filters(args), top=args.top, prices=_prices(args))
    if args.format == "json":
        print(st.report_json(report))
    elif args.format == "csv":
        sys.stdout.write(st.report_csv(report))
    else:
        st.print_report(report)
    if not args.check:
        return 0
    alerts = _watch(args).check(store, now=args.until)
    for alert in alerts:
        print(f"ALERT {alert.kind}: {alert.message}", file=sys.stderr)
    if not alerts:
        print(f"check: no alert over the last {args.window}", file=sys.stderr)
    return 1 if alerts else 0


def _watch(args: argparse.Namespace) -> Watch:
    from escalate.store import Watch

    return Watch(
        function=args.function,
        task=args.task,
        window=args.window,
        ceiling=args.ceiling,
        max_drift_points=args.drift,
        baseline=args.baseline,
        min_cheap_quality=args.min_cheap_quality,
        budget_usd_per_hour=args.budget_per_hour,
        min_calls=args.min_calls,
    )


def _dashboard(store: Store, args: argparse.Namespace) -> int:
    from escalate.store._dashboard import render_dashboard, serve_dashboard

    html = render_dashboard(store, _filters(args), prices=_prices(args), ceiling=args.ceiling)
    if args.serve:
        serve_dashboard(html, port=args.port)
        return 0
    with open(args.out, "w", encoding="utf-8") as file:
        file.write(html)
    print(f"Wrote {args.out}: open it in a browser (it needs no network)")
    return 0


def _store(parser: argparse.ArgumentParser, store: Store, args: argparse.Namespace) -> int:
    from escalate import store as st

    if args.action == "stats":
        print(f"{store!r}: {store.count()} receipts, schema version {store.schema_version()}")
        return 0
    if args.action == "prune":
        if args.before is None:
            parser.error("store prune needs --before DATE (e.g. --before 90d)")
        if args.out:
            export = st.export_jsonl if args.format == "jsonl" else st.export_csv
            kept = export(store, args.out, before=args.before)
            print(f"exported {kept} receipts to {args.out}")
        print(f"deleted {st.delete_before(store, args.before)} receipts before {args.before}")
        return 0
    export = st.export_jsonl if args.format == "jsonl" else st.export_csv
    count = export(store, args.out or sys.stdout, before=args.before, since=args.since)
    print(f"exported {count} receipts", file=sys.stderr)
    return 0
