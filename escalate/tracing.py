"""Tracing and call logs: escalating calls in the tools that production already watches.

OpenTelemetry needs no glue: with ``opentelemetry-api`` installed (``pip install
'escalate[tracing]'``) and a tracer or meter provider configured, every call of an
escalating function is a span with one child span per request, following the GenAI
semantic conventions, and records the conventions' metrics (see ``docs/tracing.md``).
:func:`configure` changes only what is recorded and where to.

Without a collector, :func:`log_calls` writes one structured record per call to the
``escalate`` logger.

Importing this module imports no ``opentelemetry``.
"""

from __future__ import annotations

import logging
from typing import Any

from escalate._receipt import Receipt
from escalate._sinks import Sink, add_sink, remove_sink
from escalate._tracing import configure

__all__ = ["configure", "log_calls"]

_logging: Sink | None = None


def log_calls(
    level: int | None = logging.INFO, *, logger: logging.Logger | str = "escalate"
) -> None:
    """Log one record per finished call (answered, failed or cancelled) at ``level``, with
    its facts as structured fields; ``log_calls(None)`` stops (off by default).

    The message is the receipt's one-line summary; ``extra`` carries
    ``escalate_function``, ``escalate_outcome``, ``escalate_path`` (the tiers tried, in
    order), ``escalate_answered_by``, ``escalate_escalated``, ``escalate_attempts``,
    ``escalate_cost_usd`` (``None`` when unknown), ``escalate_latency_s`` and
    ``escalate_receipt_id``, so a JSON formatter writes them as fields.
    """
    global _logging
    if _logging is not None:
        remove_sink(_logging)
        _logging = None
    if level is None:
        return
    if not isinstance(level, int) or isinstance(level, bool):
        raise TypeError(f"level is a logging level such as logging.INFO, got {level!r}")
    target = logging.getLogger(logger) if isinstance(logger, str) else logger

    def log(receipt: Receipt) -> None:
        if target.isEnabledFor(level):
            target.log(
                level, "%s [receipt %s]", receipt.summary(), receipt.id, extra=fields(receipt)
            )

    _logging = log
    add_sink(log)


def fields(receipt: Receipt) -> dict[str, Any]:
    """The structured fields of a call's log record."""
    cost = receipt.cost_usd
    return {
        "escalate_function": receipt.function,
        "escalate_outcome": receipt.outcome,
        "escalate_path": list(receipt.tiers_tried),
        "escalate_answered_by": receipt.answered_by,
        "escalate_escalated": receipt.escalated,
        "escalate_attempts": len(receipt.attempts),
        "escalate_cost_usd": None if cost is None else float(cost),
        "escalate_latency_s": receipt.latency_s,
        "escalate_receipt_id": receipt.id,
    }
