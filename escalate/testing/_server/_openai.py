"""The OpenAI chat-completions wire format: responses, stream chunks, usage, logprobs, errors."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from escalate.testing._server._answers import Answer, ChoiceAnswer, merge_usage, new_id
from escalate.testing._server._tokens import Tokenizer, to_json
from escalate.testing._server._values import Request

__all__ = ["REQUEST_ID_HEADER", "completion", "error_body", "stream_events"]

REQUEST_ID_HEADER = "x-request-id"

_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def error_body(status: int, message: str, request_id: str) -> dict[str, Any]:
    """An OpenAI error body."""
    default = ("server_error", None) if status >= 500 else ("invalid_request_error", None)
    kind, code = _ERRORS.get(status, default)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _usage(answer: Answer) -> dict[str, Any]:
    computed = {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.input_tokens + answer.output_tokens,
        "prompt_tokens_details": {"cached_tokens": answer.cache_read, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    usage = merge_usage(computed, answer.usage)
    if answer.usage is not None and "total_tokens" not in answer.usage:
        prompt, completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt, int) and isinstance(completion_tokens, int):
            usage["total_tokens"] = prompt + completion_tokens
    return usage


# -- logprobs ----------------------------------------------------------------------------------


def _logprob_values(spec: float | Sequence[float] | None, n: int) -> list[float]:
    if spec is None:
        return [0.0] * n
    if isinstance(spec, int | float):
        return [float(spec)] * n
    values = [float(v) for v in spec]
    if not values:
        return [0.0] * n
    return [values[i] if i < len(values) else values[-1] for i in range(n)]


def _token_logprob(text: str, raw: bytes, logprob: float, top: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"token": text, "logprob": logprob, "bytes": list(raw)}
    alternatives: list[dict[str, Any]] = []
    if top > 0:
        alternatives.append(dict(entry))
        rest = top - 1
        if rest:
            mass = max(0.0, 1.0 - math.exp(min(logprob, 0.0))) / rest
            alt_logprob = math.log(mass) if mass > 0 else -9999.0
            for i in range(1, rest + 1):
                alt = f"<alt{i}>"
                alternatives.append(
                    {"token": alt, "logprob": alt_logprob, "bytes": list(alt.encode())}
                )
        alternatives.sort(key=lambda item: -float(item["logprob"]))
    entry["top_logprobs"] = alternatives
    return entry


def _logprobs(
    choice: ChoiceAnswer, body: Mapping[str, Any], tokenizer: Tokenizer
) -> list[dict[str, Any]] | None:
    """The token logprobs of a choice's content; None when the request does not ask for them."""
    if body.get("logprobs") is not True:
        return None
    if choice.tool_name is not None:
        return []
    top = body.get("top_logprobs")
    top_n = top if isinstance(top, int) and top > 0 else 0
    tokens = tokenizer.split(choice.text)
    values = _logprob_values(choice.logprobs, len(tokens))
    return [
        _token_logprob(tok, raw, lp, top_n) for (tok, raw), lp in zip(tokens, values, strict=True)
    ]


# -- whole responses ---------------------------------------------------------------------------


def _finish(choice: ChoiceAnswer) -> str:
    if choice.finish == "length":
        return "length"
    return "tool_calls" if choice.tool_name is not None else "stop"


def _choice(choice: ChoiceAnswer, logprobs: list[dict[str, Any]] | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": choice.refusal}
    if choice.tool_name is not None:
        message["tool_calls"] = [
            {
                "id": new_id("call_"),
                "type": "function",
                "function": {"name": choice.tool_name, "arguments": choice.text},
            }
        ]
    elif choice.text or choice.refusal is None:
        message["content"] = choice.text
    wire_logprobs: dict[str, Any] | None = None
    if logprobs is not None:
        # OpenAI has no logprobs for tool-call arguments: `content` is null then.
        content = None if choice.tool_name is not None else logprobs
        wire_logprobs = {"content": content, "refusal": None}
    return {
        "index": choice.index,
        "message": message,
        "logprobs": wire_logprobs,
        "finish_reason": _finish(choice),
    }


def completion(request: Request, answer: Answer) -> dict[str, Any]:
    """The `chat.completion` body answering `request`: one choice per scripted choice."""
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": answer.model,
        "choices": [
            _choice(choice, _logprobs(choice, request.body, answer.tokenizer))
            for choice in answer.choices
        ],
        "usage": _usage(answer),
        "system_fingerprint": None,
        "service_tier": "default",
    }


# -- streams -----------------------------------------------------------------------------------

_Chunk = Callable[..., dict[str, Any]]


def _tool_call_chunks(choice: ChoiceAnswer, chunk: _Chunk, tokenizer: Tokenizer) -> Iterator[Any]:
    call = {
        "index": 0,
        "id": new_id("call_"),
        "type": "function",
        "function": {"name": choice.tool_name, "arguments": ""},
    }
    yield chunk({"tool_calls": [call]})
    for piece in tokenizer.pieces(choice.text):
        yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})


def _content_chunks(
    choice: ChoiceAnswer, logprobs: list[dict[str, Any]] | None, chunk: _Chunk, tokens: Tokenizer
) -> Iterator[dict[str, Any]]:
    if logprobs and "".join(e["token"] for e in logprobs) == choice.text:
        # One chunk per token, each carrying its own logprob.
        for entry in logprobs:
            yield chunk({"content": entry["token"]}, logprobs={"content": [entry], "refusal": None})
        return
    # (Tokens that split a character: all logprobs ride on the first chunk.)
    first: dict[str, Any] | None = {"content": logprobs, "refusal": None} if logprobs else None
    for piece in tokens.pieces(choice.text):
        yield chunk({"content": piece}, logprobs=first)
        first = None


def _choice_chunks(
    choice: ChoiceAnswer, body: Mapping[str, Any], base: dict[str, Any], tokenizer: Tokenizer
) -> Iterator[dict[str, Any]]:
    def chunk(
        delta: dict[str, Any], finish: str | None = None, logprobs: Any = None
    ) -> dict[str, Any]:
        entry = {"index": choice.index, "delta": delta, "logprobs": logprobs}
        return {**base, "choices": [{**entry, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    if choice.tool_name is not None:
        yield from _tool_call_chunks(choice, chunk, tokenizer)
    else:
        yield from _content_chunks(choice, _logprobs(choice, body, tokenizer), chunk, tokenizer)
    if choice.refusal is not None:
        for piece in tokenizer.pieces(choice.refusal):
            yield chunk({"refusal": piece})
    yield chunk({}, finish=_finish(choice))


def stream_events(request: Request, answer: Answer) -> list[bytes]:
    """The server-sent events of a streamed answer, each encoded: the choices one after the
    other, then (with `stream_options.include_usage`) a usage chunk, then `[DONE]`."""
    options = request.body.get("stream_options")
    include_usage = isinstance(options, Mapping) and options.get("include_usage") is True
    base: dict[str, Any] = {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": answer.model,
        "system_fingerprint": None,
    }
    if include_usage:
        base["usage"] = None
    chunks = [
        chunk
        for choice in answer.choices
        for chunk in _choice_chunks(choice, request.body, base, answer.tokenizer)
    ]
    if include_usage:
        chunks.append({**base, "choices": [], "usage": _usage(answer)})
    events = [f"data: {to_json(chunk)}\n\n".encode() for chunk in chunks]
    events.append(b"data: [DONE]\n\n")
    return events
