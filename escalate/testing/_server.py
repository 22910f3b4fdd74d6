"""A local LLM provider server for tests, demos and benchmarks.

`ProviderServer` listens on 127.0.0.1 and speaks enough of the OpenAI chat-completions
(`POST /v1/chat/completions`) and Anthropic messages (`POST /v1/messages`) wire formats that the
real `openai` and `anthropic` SDKs, and `instructor` on top of them, work against it over real
HTTP. Each model has a FIFO script of outcomes (`Reply`, `Fault`, `Drop`, `Malformed`, or a
callable producing one) and an optional responder used once its script is empty::

    with ProviderServer() as server:
        server.script("gpt-4o-mini", Fault(429, retry_after=0.01), Reply(data={"name": "Ada"}))
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
        ...
        assert len(server.requests_for("gpt-4o-mini")) == 2

Token counts: when the optional `bpe_openai` package imports, usage and logprob tokens are
counted with its `cl100k_base` encoding (for every model, Anthropic ones included, so Claude
counts are an approximation). Without it, a deterministic approximation is used: a text of
`n` characters counts `max(1, round(n / 4))` tokens (0 for the empty string), and texts are split
into tokens on whitespace, keeping each run of whitespace with the word after it.

The server uses only the standard library (`http.server`, `json`, `threading`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import math
import re
import socket
import threading
import time
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, TypeAlias

__all__ = [
    "Drop",
    "Fault",
    "Malformed",
    "Outcome",
    "ProviderServer",
    "Reply",
    "Request",
    "Responder",
    "ScriptItem",
]

Provider: TypeAlias = Literal["openai", "anthropic"]


# --------------------------------------------------------------------------------------------
# Public value types
# --------------------------------------------------------------------------------------------


def _content_text(content: Any) -> str:
    """Text of a message `content`: a string, or the joined text parts of a list of blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            block["text"]
            for block in content
            if isinstance(block, Mapping)
            and block.get("type", "text") == "text"
            and isinstance(block.get("text"), str)
        ]
        return "\n".join(parts)
    return ""


@dataclass(frozen=True)
class Request:
    """One request the server received, as the provider would have seen it.

    `headers` has lower-cased names; `body` is the parsed JSON body.
    """

    provider: Provider
    path: str
    model: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]
    stream: bool

    @property
    def messages(self) -> list[Any]:
        """The request's `messages` list (empty if absent)."""
        messages = self.body.get("messages")
        return list(messages) if isinstance(messages, list) else []

    @property
    def system(self) -> str | None:
        """The system prompt's text, or None.

        Anthropic: the top-level `system` (text blocks joined when it is a list). OpenAI: the text
        of the `system` (or `developer`) messages, joined with newlines.
        """
        if self.provider == "anthropic":
            system = self.body.get("system")
            if system is None:
                return None
            return _content_text(system)
        texts = [
            _content_text(message.get("content"))
            for message in self.messages
            if isinstance(message, Mapping) and message.get("role") in ("system", "developer")
        ]
        return "\n".join(texts) if texts else None

    @property
    def last_user_text(self) -> str:
        """Text of the last `user` message ("" if none), text blocks joined with newlines."""
        for message in reversed(self.messages):
            if isinstance(message, Mapping) and message.get("role") == "user":
                return _content_text(message.get("content"))
        return ""


@dataclass(frozen=True, kw_only=True)
class Reply:
    """A successful answer (HTTP 200) in the provider's format.

    - `data`: the structured answer (JSON-able). With `tools` in the request it becomes the
      arguments of a tool call (OpenAI `tool_calls`, Anthropic `tool_use` block) to the tool
      forced by `tool_choice`, else the first tool; without tools it is sent as JSON text content.
    - `text`: raw content text instead of `data` (plain answers, prose where JSON was expected).
      Takes precedence over `data`; never sent as a tool call. Neither set: content is "".
    - `tool_name`: call this tool instead (with `data` as arguments), even if the request
      forced another one or sent no tools.
    - `served_model`: the `model` the response reports (default: the requested model).
    - `input_tokens`, `output_tokens`: usage to report (default: counted, see module docs).
      `cached_tokens`: cache reads; OpenAI `prompt_tokens` includes them, Anthropic
      `input_tokens` excludes them (reported as `cache_read_input_tokens`). A counted input is
      raised to `cached_tokens` if it falls short.
    - `finish_reason`: "length" is OpenAI `finish_reason="length"`, Anthropic
      `stop_reason="max_tokens"`.
    - `refusal`: OpenAI `message.refusal`. Anthropic: a text block with this text and
      `stop_reason="refusal"`.
    - `logprobs`: served only when the OpenAI request asks `logprobs: true`, over the tokens of
      the emitted content: a float for every token, or a sequence in order (its last value
      repeats if it is shorter). None means 0.0 for each token. Tool-call replies carry
      `logprobs.content = null` (OpenAI has no logprobs for tool arguments).
    - `delay`: seconds to wait before answering.
    """

    data: Any = None
    text: str | None = None
    tool_name: str | None = None
    served_model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int = 0
    finish_reason: Literal["stop", "length"] = "stop"
    refusal: str | None = None
    logprobs: float | Sequence[float] | None = None
    delay: float = 0.0


_DEFAULT_FAULT_MESSAGES: dict[int, str] = {
    400: "Invalid request.",
    401: "Invalid authentication credentials.",
    403: "Permission denied.",
    404: "Not found.",
    408: "Request timed out.",
    409: "Conflict.",
    413: "Request too large.",
    422: "Unprocessable entity.",
    429: "Rate limit reached; please try again later.",
    500: "The server had an error while processing your request.",
    502: "Bad gateway.",
    503: "The service is temporarily unavailable.",
    504: "Gateway timeout.",
    529: "Overloaded",
}


@dataclass(frozen=True)
class Fault:
    """An HTTP error in the provider's error format.

    `retry_after` (seconds) sends `retry-after` and `retry-after-ms` headers. `message` defaults
    to a usual text for the status. `delay` waits before answering.
    """

    status: int
    retry_after: float | None = None
    message: str = ""
    delay: float = 0.0

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ValueError(f"Fault status must be an HTTP error status, got {self.status}")
        if not self.message:
            default = _DEFAULT_FAULT_MESSAGES.get(
                self.status, "Server error." if self.status >= 500 else "Request failed."
            )
            object.__setattr__(self, "message", default)


@dataclass(frozen=True)
class Drop:
    """Read the request, then close the connection without answering (a connection error)."""


@dataclass(frozen=True)
class Malformed:
    """Answer HTTP 200, `content-type: application/json`, with this (broken) body."""

    body: str = "{not json"


Outcome: TypeAlias = Reply | Fault | Drop | Malformed
Responder: TypeAlias = Callable[[Request], Outcome]
ScriptItem: TypeAlias = Outcome | Responder

_OUTCOME_TYPES = (Reply, Fault, Drop, Malformed)


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------

_WORDS = re.compile(r"\s*\S+|\s+")


class _Tokenizer:
    """cl100k via `bpe_openai` when it imports (loaded once, lazily), else an approximation."""

    def __init__(self, *, use_bpe: bool) -> None:
        self._lock = threading.Lock()
        self._loaded = not use_bpe
        self._encoding: Any = None

    def load(self) -> None:
        """Load the encoding now (importing `bpe_openai` takes about a second)."""
        self._get()

    def _get(self) -> Any:
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    try:
                        with warnings.catch_warnings():
                            # bpe_openai 0.1.4 uses deprecated importlib.resources calls.
                            warnings.simplefilter("ignore", DeprecationWarning)
                            module = importlib.import_module("bpe_openai")
                            self._encoding = module.get_encoding("cl100k_base")
                    except Exception:
                        self._encoding = None
                    self._loaded = True
        return self._encoding

    def _encode(self, text: str) -> list[int] | None:
        encoding = self._get()
        if encoding is None:
            return None
        try:
            with self._lock:
                tokens: list[int] = encoding.encode_ordinary(text)
        except Exception:
            return None
        return tokens

    def count(self, text: str) -> int:
        """Number of tokens in `text` (memoized: the same tool schemas come with every call)."""
        if not text:
            return 0
        if len(text) > 256:
            return self._count_cached(text)
        return self._count(text)

    @functools.lru_cache(maxsize=1024)  # noqa: B019 (two instances, both live for the process)
    def _count_cached(self, text: str) -> int:
        return self._count(text)

    def _count(self, text: str) -> int:
        tokens = self._encode(text)
        if tokens is None:
            return max(1, round(len(text) / 4))
        return len(tokens)

    def split(self, text: str) -> list[tuple[str, bytes]]:
        """`text` as a list of (token text, token bytes)."""
        if not text:
            return []
        tokens = self._encode(text)
        if tokens is None:
            return [(word, word.encode()) for word in _WORDS.findall(text)]
        encoding = self._get()
        pieces: list[tuple[str, bytes]] = []
        for token in tokens:
            raw: bytes = encoding.decode_single_token_bytes(token)
            pieces.append((raw.decode("utf-8", errors="replace"), raw))
        return pieces

    def pieces(self, text: str) -> list[str]:
        """`text` cut into stream fragments that join back exactly to `text`."""
        if not text:
            return []
        tokens = self._encode(text)
        if tokens is None:
            return _WORDS.findall(text)
        encoding = self._get()
        out: list[str] = []
        pending = b""
        for token in tokens:
            pending += encoding.decode_single_token_bytes(token)
            try:
                out.append(pending.decode("utf-8"))
            except UnicodeDecodeError:
                continue  # a multi-byte character split across tokens: keep going
            pending = b""
        if pending:
            out.append(pending.decode("utf-8", errors="replace"))
        return out if "".join(out) == text else [text]


_CL100K = _Tokenizer(use_bpe=True)
_APPROX = _Tokenizer(use_bpe=False)


def _jsonable(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)  # pydantic models are welcome as Reply.data
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_jsonable)


def _message_text(message: Any) -> str:
    """Every piece of text in a message, for counting input tokens."""
    if not isinstance(message, Mapping):
        return ""
    parts: list[str] = []

    def walk(content: Any) -> None:
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            for block in content:
                if isinstance(block, str):
                    parts.append(block)
                elif isinstance(block, Mapping):
                    if isinstance(block.get("text"), str):
                        parts.append(block["text"])
                    if "input" in block:
                        parts.append(_json(block["input"]))
                    if "content" in block:
                        walk(block["content"])

    walk(message.get("content"))
    for call in message.get("tool_calls") or []:
        if isinstance(call, Mapping):
            function = call.get("function")
            if isinstance(function, Mapping):
                parts.append(str(function.get("name", "")))
                parts.append(str(function.get("arguments", "")))
    return "\n".join(part for part in parts if part)


def _count_input_tokens(request: Request, tokenizer: _Tokenizer) -> int:
    body = request.body
    messages = request.messages
    total = sum(tokenizer.count(_message_text(message)) for message in messages)
    if request.provider == "anthropic" and body.get("system") is not None:
        total += tokenizer.count(_message_text({"content": body["system"]}))
    for key in ("tools", "response_format"):
        if body.get(key) is not None:
            total += tokenizer.count(_json(body[key]))
    return total + 3 * len(messages) + 3


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


# --------------------------------------------------------------------------------------------
# Building answers
# --------------------------------------------------------------------------------------------


@dataclass
class _Answer:
    """A Reply resolved against its request: what to emit, in provider-neutral terms."""

    model: str
    tool_name: str | None  # None: a text answer
    text: str  # content text, or the JSON arguments of the tool call
    arguments: Any  # the tool call's arguments as an object (Anthropic `input`)
    refusal: str | None
    finish: Literal["stop", "length"]
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    tokenizer: _Tokenizer
    logprobs: list[dict[str, Any]] | None = field(default=None)


def _forced_tool_name(body: Mapping[str, Any]) -> str | None:
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping):
        function = choice.get("function")
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            return str(function["name"])
        if isinstance(choice.get("name"), str):
            return str(choice["name"])
    tools = body.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            if not isinstance(tool, Mapping):
                continue
            function = tool.get("function")
            if isinstance(function, Mapping) and isinstance(function.get("name"), str):
                return str(function["name"])
            if isinstance(tool.get("name"), str):
                return str(tool["name"])
    return None


def _resolve(reply: Reply, request: Request, tokenizer: _Tokenizer) -> _Answer:
    body = request.body
    tool_name: str | None = None
    arguments: Any = None
    if reply.text is not None:
        text = reply.text
    else:
        if reply.tool_name is not None:
            tool_name = reply.tool_name
        elif body.get("tools"):
            tool_name = _forced_tool_name(body)
        if tool_name is not None:
            arguments = {} if reply.data is None else reply.data
            text = _json(arguments)
        else:
            text = "" if reply.data is None else _json(reply.data)
    if reply.input_tokens is not None:
        input_tokens = reply.input_tokens
    else:
        # Cache reads are part of the input: never report fewer input tokens than cached ones.
        input_tokens = max(_count_input_tokens(request, tokenizer), reply.cached_tokens)
    if reply.output_tokens is not None:
        output_tokens = reply.output_tokens
    else:
        output_tokens = tokenizer.count(text) + tokenizer.count(reply.refusal or "")
    answer = _Answer(
        model=reply.served_model or request.model,
        tool_name=tool_name,
        text=text,
        arguments=arguments,
        refusal=reply.refusal,
        finish=reply.finish_reason,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_tokens=reply.cached_tokens,
        tokenizer=tokenizer,
    )
    if request.provider == "openai" and body.get("logprobs") is True:
        answer.logprobs = []
    if answer.logprobs is not None and tool_name is None:
        top = body.get("top_logprobs")
        top_n = top if isinstance(top, int) and top > 0 else 0
        tokens = tokenizer.split(text)
        values = _logprob_values(reply.logprobs, len(tokens))
        answer.logprobs = [
            _token_logprob(tok, raw, lp, top_n)
            for (tok, raw), lp in zip(tokens, values, strict=True)
        ]
    return answer


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


def _openai_usage(answer: _Answer) -> dict[str, Any]:
    return {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.input_tokens + answer.output_tokens,
        "prompt_tokens_details": {"cached_tokens": answer.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _openai_finish(answer: _Answer) -> str:
    if answer.finish == "length":
        return "length"
    return "tool_calls" if answer.tool_name is not None else "stop"


def _openai_completion(answer: _Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": answer.refusal}
    if answer.tool_name is not None:
        message["tool_calls"] = [
            {
                "id": _new_id("call_"),
                "type": "function",
                "function": {"name": answer.tool_name, "arguments": answer.text},
            }
        ]
    elif answer.text or answer.refusal is None:
        message["content"] = answer.text
    logprobs: dict[str, Any] | None = None
    if answer.logprobs is not None:
        # OpenAI has no logprobs for tool-call arguments: `content` is null then.
        content = None if answer.tool_name is not None else answer.logprobs
        logprobs = {"content": content, "refusal": None}
    return {
        "id": _new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": answer.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": logprobs,
                "finish_reason": _openai_finish(answer),
            }
        ],
        "usage": _openai_usage(answer),
        "system_fingerprint": None,
        "service_tier": "default",
    }


def _openai_chunks(answer: _Answer, include_usage: bool) -> Iterator[dict[str, Any]]:
    base: dict[str, Any] = {
        "id": _new_id("chatcmpl-"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": answer.model,
        "system_fingerprint": None,
    }

    def chunk(
        delta: dict[str, Any], finish: str | None = None, logprobs: Any = None
    ) -> dict[str, Any]:
        out = dict(base)
        out["choices"] = [
            {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        ]
        if include_usage:
            out["usage"] = None
        return out

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    if answer.tool_name is not None:
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": _new_id("call_"),
                        "type": "function",
                        "function": {"name": answer.tool_name, "arguments": ""},
                    }
                ]
            }
        )
        for piece in answer.tokenizer.pieces(answer.text):
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
    elif answer.logprobs and "".join(e["token"] for e in answer.logprobs) == answer.text:
        # One chunk per token, each carrying its own logprob.
        for entry in answer.logprobs:
            yield chunk({"content": entry["token"]}, logprobs={"content": [entry], "refusal": None})
    else:
        # (Tokens that split a character: all logprobs ride on the first chunk.)
        logprobs = {"content": answer.logprobs, "refusal": None} if answer.logprobs else None
        for piece in answer.tokenizer.pieces(answer.text):
            yield chunk({"content": piece}, logprobs=logprobs)
            logprobs = None
    if answer.refusal is not None:
        for piece in answer.tokenizer.pieces(answer.refusal):
            yield chunk({"refusal": piece})
    yield chunk({}, finish=_openai_finish(answer))
    if include_usage:
        out = dict(base)
        out["choices"] = []
        out["usage"] = _openai_usage(answer)
        yield out


def _anthropic_stop(answer: _Answer) -> str:
    if answer.finish == "length":
        return "max_tokens"
    if answer.refusal is not None:
        return "refusal"
    return "tool_use" if answer.tool_name is not None else "end_turn"


def _anthropic_usage(answer: _Answer, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": max(0, answer.input_tokens - answer.cached_tokens),
        "output_tokens": output_tokens,
        "cache_read_input_tokens": answer.cached_tokens,
        "cache_creation_input_tokens": 0,
    }


def _anthropic_blocks(answer: _Answer) -> list[dict[str, Any]]:
    if answer.tool_name is not None:
        return [
            {
                "type": "tool_use",
                "id": _new_id("toolu_"),
                "name": answer.tool_name,
                "input": answer.arguments,
            }
        ]
    text = answer.text if answer.refusal is None else (answer.text or answer.refusal)
    return [{"type": "text", "text": text}]


def _anthropic_message(answer: _Answer) -> dict[str, Any]:
    return {
        "id": _new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": _anthropic_blocks(answer),
        "stop_reason": _anthropic_stop(answer),
        "stop_sequence": None,
        "usage": _anthropic_usage(answer, answer.output_tokens),
    }


def _anthropic_events(answer: _Answer) -> Iterator[tuple[str, dict[str, Any]]]:
    message = _anthropic_message(answer)
    block = message["content"][0]
    message.update(content=[], stop_reason=None, usage=_anthropic_usage(answer, 1))
    yield "message_start", {"type": "message_start", "message": message}
    if block["type"] == "tool_use":
        start = dict(block, input={})
        deltas = [
            {"type": "input_json_delta", "partial_json": piece}
            for piece in answer.tokenizer.pieces(answer.text)
        ]
    else:
        start = {"type": "text", "text": ""}
        deltas = [
            {"type": "text_delta", "text": piece}
            for piece in answer.tokenizer.pieces(block["text"])
        ]
    yield "content_block_start", {"type": "content_block_start", "index": 0, "content_block": start}
    yield "ping", {"type": "ping"}
    for delta in deltas:
        yield "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": _anthropic_stop(answer), "stop_sequence": None},
            "usage": {"output_tokens": answer.output_tokens},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def _stream_events(request: Request, answer: _Answer) -> list[bytes]:
    """The server-sent events of a streamed answer, each encoded."""
    events: list[bytes] = []
    if request.provider == "openai":
        options = request.body.get("stream_options")
        include_usage = isinstance(options, Mapping) and options.get("include_usage") is True
        for chunk in _openai_chunks(answer, include_usage):
            events.append(f"data: {_json(chunk)}\n\n".encode())
        events.append(b"data: [DONE]\n\n")
    else:
        for event, data in _anthropic_events(answer):
            events.append(f"event: {event}\ndata: {_json(data)}\n\n".encode())
    return events


_OPENAI_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    429: ("requests", "rate_limit_exceeded"),
}

_ANTHROPIC_ERRORS: dict[int, str] = {
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


def _error_body(provider: Provider, status: int, message: str, request_id: str) -> dict[str, Any]:
    if provider == "openai":
        default = ("server_error", None) if status >= 500 else ("invalid_request_error", None)
        kind, code = _OPENAI_ERRORS.get(status, default)
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}
    default_kind = "api_error" if status >= 500 else "invalid_request_error"
    return {
        "type": "error",
        "error": {"type": _ANTHROPIC_ERRORS.get(status, default_kind), "message": message},
        "request_id": request_id,
    }


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(float(value))


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, owner: ProviderServer, address: tuple[str, int]) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or hang up are part of the job; stay quiet about them.
        return


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "escalate-test-server/1"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self._owner()._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._owner()._connection_closed(self.connection)

    def _owner(self) -> ProviderServer:
        server = self.server
        assert isinstance(server, _HTTPServer)
        return server.owner

    def log_message(self, format: str, *args: Any) -> None:
        return

    # -- routing -------------------------------------------------------------------------------

    def _guess_provider(self) -> Provider:
        if "x-api-key" in self.headers or "anthropic-version" in self.headers:
            return "anthropic"
        return "openai"

    def do_GET(self) -> None:
        self._read_body()
        self._not_found(self._guess_provider())

    do_PUT = do_GET
    do_DELETE = do_GET
    do_PATCH = do_GET

    def do_POST(self) -> None:
        raw = self._read_body()
        path = self.path.split("?", 1)[0].rstrip("/")
        provider: Provider
        if path.endswith("/chat/completions"):
            provider = "openai"
        elif path.endswith("/messages"):
            provider = "anthropic"
        else:
            self._not_found(self._guess_provider())
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            self._error(provider, 400, f"escalate test server: request body is not JSON ({exc})")
            return
        if not isinstance(body, dict):
            self._error(provider, 400, "escalate test server: request body must be a JSON object")
            return
        model = body.get("model")
        request = Request(
            provider=provider,
            path=self.path,
            model=model if isinstance(model, str) else "",
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            stream=body.get("stream") is True,
        )
        owner = self._owner()
        owner._record(request)
        if not owner._authorized(request):
            self._error(provider, 401, "escalate test server: invalid API key")
            return
        try:
            outcome = owner._next_outcome(request)
        except Exception as exc:  # a scripted callable or responder raised
            self._error(provider, 400, f"escalate test server: responder raised {exc!r}")
            return
        if isinstance(outcome, str):
            self._error(provider, 400, outcome)
            return
        self._serve(request, outcome)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # -- answering -----------------------------------------------------------------------------

    def _serve(self, request: Request, outcome: Outcome) -> None:
        provider = request.provider
        if isinstance(outcome, Drop):
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if isinstance(outcome, Malformed):
            self._send(200, outcome.body.encode(), "application/json")
            return
        if outcome.delay > 0:
            time.sleep(outcome.delay)
        if isinstance(outcome, Fault):
            headers: dict[str, str] = {}
            if outcome.retry_after is not None:
                headers["retry-after"] = _seconds(outcome.retry_after)
                headers["retry-after-ms"] = _seconds(outcome.retry_after * 1000)
            self._error(provider, outcome.status, outcome.message, headers)
            return
        try:
            # Everything is built before the first byte is sent, so a Reply that cannot be
            # served (say, data that is not JSON-able) is a clear 400, not a dropped connection.
            answer = _resolve(outcome, request, self._owner().tokenizer)
            if request.stream:
                events = _stream_events(request, answer)
            elif provider == "openai":
                payload = _json(_openai_completion(answer)).encode()
            else:
                payload = _json(_anthropic_message(answer)).encode()
        except Exception as exc:
            self._error(provider, 400, f"escalate test server: cannot serve {outcome!r}: {exc!r}")
            return
        if request.stream:
            self._stream(provider, events)
        else:
            name, request_id = self._request_id_header(provider)
            self._send(200, payload, "application/json", {name: request_id})

    def _request_id_header(self, provider: Provider) -> tuple[str, str]:
        name = "x-request-id" if provider == "openai" else "request-id"
        return name, _new_id("req_")

    def _error(
        self,
        provider: Provider,
        status: int,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        name, request_id = self._request_id_header(provider)
        body = _error_body(provider, status, message, request_id)
        all_headers = {name: request_id, **(headers or {})}
        self._send(status, _json(body).encode(), "application/json", all_headers)

    def _not_found(self, provider: Provider) -> None:
        self._error(provider, 404, f"escalate test server: no route for {self.command} {self.path}")

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        # One write for status line, headers and body.
        lines = [
            f"HTTP/1.1 {status} {self.responses.get(status, ('Error',))[0]}",
            f"content-type: {content_type}",
            f"content-length: {len(body)}",
        ]
        lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
        if self.close_connection:
            lines.append("connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            self.wfile.write(head + body)
        except OSError:
            self.close_connection = True

    def _stream(self, provider: Provider, events: list[bytes]) -> None:
        name, request_id = self._request_id_header(provider)
        head = (
            "HTTP/1.1 200 OK\r\n"
            "content-type: text/event-stream; charset=utf-8\r\n"
            "cache-control: no-cache\r\n"
            "transfer-encoding: chunked\r\n"
            f"{name}: {request_id}\r\n\r\n"
        ).encode("latin-1")
        try:
            self.wfile.write(head)
            for event_bytes in events:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event_bytes), event_bytes))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class ProviderServer:
    """A scripted OpenAI- and Anthropic-compatible server on 127.0.0.1 (a free port).

    It binds when built and serves from `start()` (or entering it as a context manager) until
    `stop()`. Point `openai.OpenAI(base_url=server.openai_base_url)` or
    `anthropic.Anthropic(base_url=server.anthropic_base_url)` at it.

    Each model answers from its FIFO script (`script`), then from its responder (`respond`).
    With neither, it answers HTTP 400 naming the model. With `require_api_key`, requests whose
    `authorization: Bearer <key>` (OpenAI) or `x-api-key` (Anthropic) differs get HTTP 401.
    Every request is recorded (`requests`), including those answered 400 or 401.
    All methods are thread-safe.

    `tokens="auto"` counts tokens with cl100k when `bpe_openai` imports (the first `start()` in a
    process loads it, about a second, so that no request waits for it); `tokens="approx"` never
    imports it and counts `max(1, round(len(text) / 4))` per text.
    """

    def __init__(
        self,
        *,
        require_api_key: str | None = None,
        tokens: Literal["auto", "approx"] = "auto",
    ) -> None:
        self.require_api_key = require_api_key
        self.tokenizer = _APPROX if tokens == "approx" else _CL100K
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[ScriptItem]] = {}
        self._responders: dict[str, Responder] = {}
        self._requests: list[Request] = []
        self._connections: set[socket.socket] = set()
        self._httpd = _HTTPServer(self, ("127.0.0.1", 0))
        self._thread: threading.Thread | None = None
        self._stopped = False

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """Base URL for `openai.OpenAI(base_url=...)`: `url + "/v1"`."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Base URL for `anthropic.Anthropic(base_url=...)`: `url`."""
        return self.url

    def start(self) -> ProviderServer:
        """Serve in a daemon thread. Calling it again while running does nothing."""
        with self._lock:
            if self._stopped:
                raise RuntimeError("this ProviderServer was stopped; build a new one")
            if self._thread is not None:
                return self
            self.tokenizer.load()
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"escalate-provider-server-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and join the thread. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            thread = self._thread
        if thread is not None:
            self._httpd.shutdown()
            thread.join()
        self._httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> ProviderServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- scripting -----------------------------------------------------------------------------

    def script(self, model: str, *items: ScriptItem) -> None:
        """Append outcomes (or callables `fn(request) -> outcome`, used once) to `model`'s queue."""
        for item in items:
            if not (isinstance(item, _OUTCOME_TYPES) or callable(item)):
                raise TypeError(
                    "script items must be Reply, Fault, Drop, Malformed or a callable, "
                    f"got {item!r}"
                )
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(items)

    def respond(self, model: str, fn: Responder | None) -> None:
        """Answer every call to `model` with `fn(request)` once its script is empty.

        `None` removes the responder.
        """
        with self._lock:
            if fn is None:
                self._responders.pop(model, None)
            else:
                self._responders[model] = fn

    def reset(self) -> None:
        """Forget all scripts, responders and recorded requests."""
        with self._lock:
            self._scripts.clear()
            self._responders.clear()
            self._requests.clear()

    @property
    def requests(self) -> list[Request]:
        """A copy of the recorded requests, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, model: str) -> list[Request]:
        """The recorded requests for `model`, in arrival order."""
        with self._lock:
            return [request for request in self._requests if request.model == model]

    def pending(self, model: str) -> int:
        """How many scripted items are still queued for `model`."""
        with self._lock:
            return len(self._scripts.get(model, ()))

    # -- used by the HTTP handler --------------------------------------------------------------

    def _record(self, request: Request) -> None:
        """Record one received request."""
        with self._lock:
            self._requests.append(request)

    def _authorized(self, request: Request) -> bool:
        """Whether `request` carries the required API key (always True without one)."""
        key = self.require_api_key
        if key is None:
            return True
        bearer = request.headers.get("authorization") == f"Bearer {key}"
        if request.provider == "openai":
            return bearer
        return request.headers.get("x-api-key") == key or bearer

    def _next_outcome(self, request: Request) -> Outcome | str:
        """The outcome for `request`, or an error message when nothing is scripted for it."""
        model = request.model
        with self._lock:
            queue = self._scripts.get(model)
            item: ScriptItem | None = queue.popleft() if queue else None
            if item is None:
                item = self._responders.get(model)
        if item is None:
            return (
                f"escalate test server: no scripted reply left for model {model!r} "
                "(script it with server.script(...) or server.respond(...))"
            )
        if isinstance(item, _OUTCOME_TYPES):
            return item
        outcome = item(request)
        if not isinstance(outcome, _OUTCOME_TYPES):
            return (
                f"escalate test server: the responder for model {model!r} returned "
                f"{outcome!r}, not a Reply, Fault, Drop or Malformed"
            )
        return outcome

    def _connection_opened(self, connection: socket.socket) -> None:
        """Track an open client connection."""
        with self._lock:
            self._connections.add(connection)

    def _connection_closed(self, connection: socket.socket) -> None:
        """Forget a closed client connection."""
        with self._lock:
            self._connections.discard(connection)
