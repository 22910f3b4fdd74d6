"""The dashboard's HTML pieces: its tables, its sections and its figures' words. Every
text that goes in is escaped here (function, task, tier and gate names come from users)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from html import escape

__all__ = ["section", "share", "table", "usd"]


def usd(value: Decimal | None, digits: int = 6) -> str:
    return "unknown" if value is None else f"${value:.{digits}f}"


def share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def table(header: Sequence[str], rows: Sequence[Sequence[object]], *, table_id: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    if not rows:
        rows = [["(none)", *[""] * (len(header) - 1)]]
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{escape(str(c))}</td>'
            if isinstance(c, (int, float)) and not isinstance(c, bool)
            else f"<td>{escape(str(c))}</td>"
            for c in row
        )
        + "</tr>"
        for row in rows
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def section(section_id: str, title: str, *body: str, wide: bool = False) -> str:
    cls = ' class="wide"' if wide else ""
    return f'<section id="{section_id}"{cls}><h2>{escape(title)}</h2>{"".join(body)}</section>'
