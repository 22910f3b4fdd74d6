"""A `Reply` resolved against its request: what to emit, in provider-neutral terms."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from escalate.testing._server._cache import CachePlan
from escalate.testing._server._tokens import Tokenizer, count_input_tokens, to_json
from escalate.testing._server._values import Choice, Reply, Request

__all__ = ["Answer", "ChoiceAnswer", "merge_usage", "new_id", "resolve"]


@dataclass(frozen=True)
class ChoiceAnswer:
    """One choice to emit."""

    index: int
    tool_name: str | None  # None: a text answer
    text: str  # content text, or the JSON arguments of the tool call
    arguments: Any  # the tool call's arguments as an object (Anthropic `input`)
    refusal: str | None
    finish: Literal["stop", "length"]
    output_tokens: int
    logprobs: float | Sequence[float] | None


@dataclass(frozen=True)
class Answer:
    """A whole response to emit: its choices and its usage."""

    model: str
    choices: tuple[ChoiceAnswer, ...]
    input_tokens: int  # all input, cache reads and writes included
    output_tokens: int  # over all choices
    cache_read: int
    cache_written: int
    usage: Mapping[str, Any] | None  # the scripted wire usage fields
    tokenizer: Tokenizer

    @property
    def first(self) -> ChoiceAnswer:
        """The first choice (the only one but for OpenAI's `n`)."""
        return self.choices[0]


def new_id(prefix: str) -> str:
    """A fresh id in the provider's style, e.g. `new_id("msg_")`."""
    return prefix + uuid.uuid4().hex[:24]


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


def _resolve_choice(
    choice: Choice, index: int, body: Mapping[str, Any], tokenizer: Tokenizer
) -> ChoiceAnswer:
    tool_name: str | None = None
    arguments: Any = None
    if choice.text is not None:
        text = choice.text
    else:
        if choice.tool_name is not None:
            tool_name = choice.tool_name
        elif body.get("tools") and (choice.refusal is None or choice.data is not None):
            # (A bare refusal is no tool call, as with the real APIs.)
            tool_name = _forced_tool_name(body)
        if tool_name is not None:
            arguments = {} if choice.data is None else choice.data
            text = to_json(arguments)
        else:
            text = "" if choice.data is None else to_json(choice.data)
    output_tokens = choice.output_tokens
    if output_tokens is None:
        output_tokens = tokenizer.count(text) + tokenizer.count(choice.refusal or "")
    return ChoiceAnswer(
        index=index,
        tool_name=tool_name,
        text=text,
        arguments=arguments,
        refusal=choice.refusal,
        finish=choice.finish_reason,
        output_tokens=output_tokens,
        logprobs=choice.logprobs,
    )


def _scripted_choices(reply: Reply, n: int) -> tuple[Choice, ...]:
    choices = reply.choice_list()
    if reply.choices is None:
        return choices * n
    if len(choices) != n:
        raise ValueError(f"the Reply scripts {len(choices)} choices, the request asks n={n}")
    return choices


def resolve(reply: Reply, request: Request, tokenizer: Tokenizer, cache: CachePlan) -> Answer:
    """What to answer `request` with; raises ValueError (or TypeError) if it cannot be served."""
    n = request.n
    if not 1 <= n <= 128:
        raise ValueError(f"n must be between 1 and 128, got {n}")
    choices = tuple(
        _resolve_choice(choice, i, request.body, tokenizer)
        for i, choice in enumerate(_scripted_choices(reply, n))
    )
    if reply.input_tokens is not None:
        input_tokens = reply.input_tokens
    else:
        # Cache reads are part of the input: never report fewer input tokens than cached ones.
        input_tokens = max(count_input_tokens(request, tokenizer), reply.cached_tokens)
    if reply.cached_tokens:
        read, written = reply.cached_tokens, 0
    else:
        read = min(cache.read, input_tokens)
        written = min(cache.written, input_tokens - read)
    output_tokens = reply.output_tokens
    if output_tokens is None:
        output_tokens = sum(choice.output_tokens for choice in choices)
    return Answer(
        model=reply.served_model or request.model,
        choices=choices,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read=read,
        cache_written=written,
        usage=reply.usage,
        tokenizer=tokenizer,
    )


def merge_usage(computed: dict[str, Any], scripted: Mapping[str, Any] | None) -> dict[str, Any]:
    """`computed` with the scripted fields set over it (nested mappings merged)."""
    if not scripted:
        return computed
    out = dict(computed)
    for key, value in scripted.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out
