"""The Anthropic messages wire format: messages, stream events, usage with cache figures, errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from escalate.testing._server._answers import Answer, merge_usage, new_id
from escalate.testing._server._tokens import to_json
from escalate.testing._server._values import Request

__all__ = ["REQUEST_ID_HEADER", "error_body", "message", "stream_events"]

REQUEST_ID_HEADER = "request-id"

_ERRORS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str, request_id: str) -> dict[str, Any]:
    """An Anthropic error body."""
    default_kind = "api_error" if status >= 500 else "invalid_request_error"
    return {
        "type": "error",
        "error": {"type": _ERRORS.get(status, default_kind), "message": message},
        "request_id": request_id,
    }


def _stop(answer: Answer) -> str:
    choice = answer.first
    if choice.finish == "length":
        return "max_tokens"
    if choice.refusal is not None:
        return "refusal"
    return "tool_use" if choice.tool_name is not None else "end_turn"


def _usage(answer: Answer) -> dict[str, Any]:
    """`input_tokens` excludes cache reads and writes, as the real API's does."""
    computed = {
        "input_tokens": max(0, answer.input_tokens - answer.cache_read - answer.cache_written),
        "output_tokens": answer.output_tokens,
        "cache_read_input_tokens": answer.cache_read,
        "cache_creation_input_tokens": answer.cache_written,
    }
    return merge_usage(computed, answer.usage)


def _blocks(answer: Answer) -> list[dict[str, Any]]:
    choice = answer.first
    if choice.tool_name is not None:
        return [
            {
                "type": "tool_use",
                "id": new_id("toolu_"),
                "name": choice.tool_name,
                "input": choice.arguments,
            }
        ]
    text = choice.text if choice.refusal is None else (choice.text or choice.refusal)
    return [{"type": "text", "text": text}]


def message(request: Request, answer: Answer) -> dict[str, Any]:
    """The `message` body answering `request`."""
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": _blocks(answer),
        "stop_reason": _stop(answer),
        "stop_sequence": None,
        "usage": _usage(answer),
    }


def _events(request: Request, answer: Answer) -> Iterator[tuple[str, dict[str, Any]]]:
    start = message(request, answer)
    block = start["content"][0]
    usage = start["usage"]
    # The final output count comes with `message_delta`, as the real API does.
    start.update(content=[], stop_reason=None, usage={**usage, "output_tokens": 1})
    yield "message_start", {"type": "message_start", "message": start}
    pieces = answer.tokenizer.pieces
    if block["type"] == "tool_use":
        opening = dict(block, input={})
        deltas = [
            {"type": "input_json_delta", "partial_json": piece}
            for piece in pieces(answer.first.text)
        ]
    else:
        opening = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": piece} for piece in pieces(block["text"])]
    yield (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": opening},
    )
    yield "ping", {"type": "ping"}
    for delta in deltas:
        yield "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": _stop(answer), "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def stream_events(request: Request, answer: Answer) -> list[bytes]:
    """The server-sent events of a streamed answer, each encoded."""
    return [
        f"event: {event}\ndata: {to_json(data)}\n\n".encode()
        for event, data in _events(request, answer)
    ]
