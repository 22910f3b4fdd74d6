"""The attributes escalate's spans and metrics share, read from the receipt only."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from escalate._receipt import Attempt, Receipt

_OPERATION = "chat"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FAILED_ATTEMPT = frozenset({"provider_error", "error", "cancelled"})
_FAILED_CALL = frozenset({"failed", "error", "cancelled"})


def _ns(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def _call_attributes(receipt: Receipt, error: BaseException | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "escalate.receipt_id": receipt.id,
        "escalate.outcome": receipt.outcome,
        "escalate.escalated": receipt.escalated,
        "escalate.start_tier": receipt.route.start_tier,
        "escalate.route_source": receipt.route.source,
        "escalate.tiers_tried": receipt.tiers_tried,
        "escalate.attempts": len(receipt.attempts),
        "escalate.known_cost_usd": float(receipt.known_cost_usd),
        "escalate.usage.input_tokens": receipt.input_tokens,
        "escalate.usage.output_tokens": receipt.output_tokens,
    }
    if receipt.answered_by is not None:
        attributes["escalate.answered_by"] = receipt.answered_by
    if receipt.cost_usd is not None:
        attributes["escalate.cost_usd"] = float(receipt.cost_usd)
    if receipt.task is not None:
        attributes["escalate.task"] = receipt.task
    sources = sorted({a.cost_source for a in receipt.attempts if a.cost_source})
    if sources:
        attributes["escalate.cost_sources"] = tuple(sources)
    if receipt.outcome in _FAILED_CALL:
        attributes["error.type"] = type(error).__name__ if error else receipt.outcome
    return attributes


def _genai(attempt: Attempt) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": _OPERATION,
        "gen_ai.provider.name": attempt.provider,
        "gen_ai.request.model": attempt.requested_model,
    }
    if attempt.served_model is not None:
        attributes["gen_ai.response.model"] = attempt.served_model
    return attributes


def _error_type(attempt: Attempt) -> str | None:
    """The conventions' ``error.type`` of an attempt that failed as a request: the HTTP
    status when there is one, else the trigger. A rejected answer is no request error."""
    if attempt.outcome not in _FAILED_ATTEMPT:
        return None
    if attempt.status_code is not None:
        return str(attempt.status_code)
    return attempt.trigger or attempt.outcome


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content
        )
    return "" if content is None else str(content)


def _input_messages(messages: list[dict[str, Any]]) -> str:
    """The conventions' ``gen_ai.input.messages``: role and text parts, as JSON."""
    return json.dumps(
        [
            {"role": m.get("role"), "parts": [{"type": "text", "content": _text(m.get("content"))}]}
            for m in messages
        ],
        ensure_ascii=False,
    )


def _output_messages(attempt: Attempt, finished: str | None) -> str:
    message: dict[str, Any] = {
        "role": "assistant",
        "parts": [{"type": "text", "content": attempt.raw_output}],
    }
    if finished is not None:
        message["finish_reason"] = finished
    return json.dumps([message], ensure_ascii=False)
