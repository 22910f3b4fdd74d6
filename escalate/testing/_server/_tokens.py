"""Token counting: cl100k via `bpe_openai` when it imports, else a deterministic approximation."""

from __future__ import annotations

import functools
import importlib
import json
import re
import threading
import warnings
from collections.abc import Mapping
from typing import Any

from escalate.testing._server._values import Request

__all__ = ["APPROX", "CL100K", "Tokenizer", "count_input_tokens", "to_json"]

_WORDS = re.compile(r"\s*\S+|\s+")


class Tokenizer:
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


CL100K = Tokenizer(use_bpe=True)
APPROX = Tokenizer(use_bpe=False)


def _jsonable(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)  # pydantic models are welcome as Reply.data
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(value: Any) -> str:
    """`value` as JSON text (pydantic models dumped), non-ASCII kept as is."""
    return json.dumps(value, ensure_ascii=False, default=_jsonable)


def _content_parts(content: Any, parts: list[str]) -> None:
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
                    parts.append(to_json(block["input"]))
                if "content" in block:
                    _content_parts(block["content"], parts)


def _message_text(message: Any) -> str:
    """Every piece of text in a message, for counting input tokens."""
    if not isinstance(message, Mapping):
        return ""
    parts: list[str] = []
    _content_parts(message.get("content"), parts)
    for call in message.get("tool_calls") or []:
        if isinstance(call, Mapping):
            function = call.get("function")
            if isinstance(function, Mapping):
                parts.append(str(function.get("name", "")))
                parts.append(str(function.get("arguments", "")))
    return "\n".join(part for part in parts if part)


def count_input_tokens(request: Request, tokenizer: Tokenizer) -> int:
    """Input tokens of a request: its messages (3 more each), system, tools, response format,
    and 3 more for priming the answer."""
    body = request.body
    messages = request.messages
    total = sum(tokenizer.count(_message_text(message)) for message in messages)
    if request.provider == "anthropic" and body.get("system") is not None:
        total += tokenizer.count(_message_text({"content": body["system"]}))
    for key in ("tools", "response_format"):
        if body.get(key) is not None:
            total += tokenizer.count(to_json(body[key]))
    return total + 3 * len(messages) + 3
