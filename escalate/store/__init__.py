"""The receipt store: where receipts go, and what is learned there.

Imported only when a store is configured (``escalate.configure(store=...)``) or a report
is asked for: it needs the ``store`` extra (SQLAlchemy, rich); PostgreSQL needs the
``postgres`` extra (psycopg 3). See ``docs/store.md``.

- :class:`Store`: one database (SQLite file or PostgreSQL), its schema and migrations;
- :func:`build_report` over :class:`Filters`, printed by :func:`print_report`, or as
  :func:`report_json` and :func:`report_csv`;
- :func:`export_jsonl`, :func:`export_csv`, :func:`delete_before`: retention;
- :func:`audit_labels`: the audits of what passed as labels (see ``docs/audits.md``).
"""

from escalate.store._alerts import Watch, check_watches
from escalate.store._audits import AuditLabel, AuditSummary, FalsePass, audit_labels, wilson
from escalate.store._figures import (
    AdaptiveClass,
    CalibrationHint,
    Firing,
    Funnel,
    PathCost,
    Quality,
    ReasonCount,
    Saving,
)
from escalate.store._output import print_report, report_csv, report_json, summary_lines
from escalate.store._query import Filters
from escalate.store._report import Report, build_report
from escalate.store._retention import delete_before, export_csv, export_jsonl
from escalate.store._savings import METHOD as SAVINGS_METHOD
from escalate.store._schema import SCHEMA_VERSION, StoreVersionError
from escalate.store._store import Store
from escalate.store._writer import StoreStats, Writer

__all__ = [
    "SAVINGS_METHOD",
    "SCHEMA_VERSION",
    "AdaptiveClass",
    "AuditLabel",
    "AuditSummary",
    "CalibrationHint",
    "FalsePass",
    "Filters",
    "Firing",
    "Funnel",
    "PathCost",
    "Quality",
    "ReasonCount",
    "Report",
    "Saving",
    "Store",
    "StoreStats",
    "StoreVersionError",
    "Watch",
    "Writer",
    "audit_labels",
    "build_report",
    "check_watches",
    "delete_before",
    "export_csv",
    "export_jsonl",
    "print_report",
    "report_csv",
    "report_json",
    "summary_lines",
    "wilson",
]
