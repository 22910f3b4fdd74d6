"""Request matching for LLM cassettes: a recorded answer replays only for a request that
would get the same answer.

Two LLM requests match on what decides the answer (:data:`MATCHED_FIELDS`: model,
messages, system, tools, tool choice, response format, logprobs) and the URL path, never
on the URL alone, and never on the host, so a cassette recorded against one server (a
local one, a proxy) replays against another; other requests match as vcrpy matches them
by default.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["MATCHED_FIELDS", "MATCHER", "llm_request"]

MATCHER = "llm_request"
"""The name escalate's matcher is registered under; keep it in a ``match_on`` of your own."""

MATCHED_FIELDS = (
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "response_format",
    "logprobs",
    "top_logprobs",
)
"""The fields of an LLM request body that must be equal for a recorded answer to replay."""


def _llm_body(request: Any) -> dict[str, Any] | None:
    """The JSON body of an LLM request (one with a model or messages), else None."""
    if getattr(request, "method", None) != "POST":
        return None
    body = getattr(request, "body", None)
    if hasattr(body, "read"):
        return None
    if isinstance(body, (bytes, bytearray)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(body, str):
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if isinstance(parsed, dict) and ("model" in parsed or "messages" in parsed):
        return parsed
    return None


def _brief(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _difference(new: Mapping[str, Any], recorded: Mapping[str, Any], fields: list[str]) -> str:
    lines = []
    for name in fields:
        mine, theirs = new.get(name), recorded.get(name)
        if name == "messages" and isinstance(mine, list) and isinstance(theirs, list):
            index = next(
                (i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b),
                min(len(mine), len(theirs)),
            )
            if index >= min(len(mine), len(theirs)):
                lines.append(f"messages: {len(theirs)} recorded, {len(mine)} in this request")
                continue
            lines.append(f"messages[{index}] differs:")
            lines.append(f"  recorded:     {_brief(theirs[index])}")
            lines.append(f"  this request: {_brief(mine[index])}")
        else:
            lines.append(f"{name}: recorded {_brief(theirs)}, this request {_brief(mine)}")
    return "\n".join(lines)


_URL_PARTS = ("scheme", "host", "port", "path", "query")


def llm_request(new: Any, recorded: Any) -> None:
    """vcrpy matcher: raise ``AssertionError`` (saying what differs) unless ``new`` may
    replay ``recorded``.

    Two LLM requests (POSTs whose JSON body has a model or messages) match when their URL
    paths and every field in :data:`MATCHED_FIELDS` are equal: headers, host, port and
    query never count, so a changed prompt never replays an old answer and a recording
    made against one server replays against another. Other requests match on scheme,
    host, port, path and query, as vcrpy's default ``match_on`` does.
    """
    new_body, recorded_body = _llm_body(new), _llm_body(recorded)
    if new_body is None or recorded_body is None:
        for part in _URL_PARTS:
            if getattr(new, part) != getattr(recorded, part):
                raise AssertionError(
                    f"{part}: recorded {getattr(recorded, part)!r}, "
                    f"this request {getattr(new, part)!r}"
                )
        return
    if new.path != recorded.path:
        raise AssertionError(f"path: recorded {recorded.path!r}, this request {new.path!r}")
    differing = [f for f in MATCHED_FIELDS if new_body.get(f) != recorded_body.get(f)]
    if differing:
        raise AssertionError(_difference(new_body, recorded_body, differing))
