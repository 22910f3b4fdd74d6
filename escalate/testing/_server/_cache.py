"""Anthropic prompt caching, simulated per server: which marked prefixes were seen before.

A request's content blocks run in the order Anthropic caches them: `tools`, then `system`
blocks, then each message's content blocks. Every block marked `cache_control: {"type":
"ephemeral"}` ends a cacheable prefix. The longest marked prefix this server has seen before
(same model, same content) is read from the cache; the rest up to the last marked block is
written to it. Requests without a mark read and write nothing. Unlike the real API there is no
minimum prefix length and no expiry (`ProviderServer.reset()` empties the cache).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from escalate.testing._server._tokens import Tokenizer, count_input_tokens, to_json
from escalate.testing._server._values import Request

__all__ = ["CachePlan", "PromptCache"]


@dataclass(frozen=True)
class CachePlan:
    """Cache figures for one request, and the prefixes to remember once it is answered."""

    read: int = 0
    written: int = 0
    keys: tuple[str, ...] = ()


def _marked(block: Any) -> bool:
    if not isinstance(block, Mapping):
        return False
    control = block.get("cache_control")
    return isinstance(control, Mapping) and control.get("type") == "ephemeral"


def _marked_prefixes(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One truncated body per marked block, shortest first."""
    out: list[dict[str, Any]] = []
    base: dict[str, Any] = {}
    tools = body.get("tools")
    if isinstance(tools, list):
        out.extend({"tools": tools[: i + 1]} for i, tool in enumerate(tools) if _marked(tool))
        base["tools"] = tools
    system = body.get("system")
    if isinstance(system, list):
        out.extend(
            {**base, "system": system[: i + 1]} for i, block in enumerate(system) if _marked(block)
        )
    if system is not None:
        base["system"] = system
    messages = body.get("messages")
    messages = messages if isinstance(messages, list) else []
    for m, message in enumerate(messages):
        content = message.get("content") if isinstance(message, Mapping) else None
        if not isinstance(content, list):
            continue
        for i, block in enumerate(content):
            if _marked(block):
                cut = {**message, "content": content[: i + 1]}
                out.append({**base, "messages": [*messages[:m], cut]})
    return out


def _unmarked(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _unmarked(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_unmarked(item) for item in value]
    return value


class PromptCache:
    """The prefixes one server has cached (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[str] = set()

    def plan(self, request: Request, tokenizer: Tokenizer) -> CachePlan:
        """What `request` reads from and writes to the cache (nothing for OpenAI requests)."""
        if request.provider != "anthropic":
            return CachePlan()
        prefixes = _marked_prefixes(request.body)
        if not prefixes:
            return CachePlan()
        keys = tuple(
            hashlib.sha256((request.model + "\0" + to_json(_unmarked(p))).encode()).hexdigest()
            for p in prefixes
        )
        tokens = [
            count_input_tokens(
                Request("anthropic", request.path, request.model, {}, prefix, False), tokenizer
            )
            for prefix in prefixes
        ]
        with self._lock:
            hits = [i for i, key in enumerate(keys) if key in self._seen]
        read = tokens[hits[-1]] if hits else 0
        return CachePlan(read=read, written=max(0, max(tokens) - read), keys=keys)

    def commit(self, plan: CachePlan) -> None:
        """Remember the prefixes of an answered request."""
        with self._lock:
            self._seen.update(plan.keys)

    def clear(self) -> None:
        """Forget every cached prefix."""
        with self._lock:
            self._seen.clear()
