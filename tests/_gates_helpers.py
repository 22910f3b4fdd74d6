"""What the gate tests share: an answer model with every kind of field, real SDK
completions, a context, and the models and tiers of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic.types
import openai.types.chat
import pytest
from pydantic import BaseModel

from escalate import Tier
from escalate.gates import GateContext, Rejected

# --- answers and contexts -----------------------------------------------------------------


class Customer(BaseModel):
    id: str
    name: str


class Source(BaseModel):
    id: str
    quote: str


class Answer(BaseModel):
    summary: str
    tags: list[str] = []
    sources: list[Source] = []
    customer: Customer | None = None
    confidence: float | None = None
    total: float = 0.0


def answer(**changes: Any) -> Answer:
    data: dict[str, Any] = {
        "summary": "The invoice is due on 3 May [1] and was paid in full [2].",
        "tags": ["billing", "paid"],
        "sources": [{"id": "doc-1", "quote": "due 3 May"}, {"id": "doc-2", "quote": "paid"}],
        "customer": {"id": "C-7", "name": "ACME"},
        "confidence": 0.9,
    }
    return Answer.model_validate({**data, **changes})


def openai_completion(
    logprobs: list[float] | None = None, finish_reason: str = "stop"
) -> openai.types.chat.ChatCompletion:
    """A real SDK completion object, as instructor hands it to the engine."""
    content: list[dict[str, Any]] | None = None
    if logprobs is not None:
        content = [
            {"token": f"t{i}", "logprob": lp, "bytes": None, "top_logprobs": []}
            for i, lp in enumerate(logprobs)
        ]
    return openai.types.chat.ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": finish_reason,
                    "message": {"role": "assistant", "content": "{}"},
                    "logprobs": None if content is None else {"content": content},
                }
            ],
        }
    )


def anthropic_message(stop_reason: str) -> anthropic.types.Message:
    return anthropic.types.Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-haiku-4-5",
            "content": [{"type": "text", "text": "{}"}],
            "stop_reason": stop_reason,
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
    )


def ctx(completion: Any = None) -> GateContext:
    return GateContext(
        messages=[{"role": "user", "content": "x"}],
        tier="cheap",
        deployment="cheap",
        provider="openai",
        model="gpt-4o-mini",
        completion=completion,
        attempt=None,
    )


def passes(gate: Callable[..., Any], value: Any, context: GateContext | None = None) -> bool:
    """Whether the gate passes ``value`` without a score."""
    result: object = gate(value, context or ctx())
    return result is None


def reason_of(gate: Callable[..., Any], value: Any, context: GateContext | None = None) -> str:
    with pytest.raises(Rejected) as caught:
        gate(value, context or ctx())
    return caught.value.reason


class Summary(BaseModel):
    summary: str
    sources: list[str] = []


class Rated(BaseModel):
    summary: str
    confidence: float


STRONG: dict[str, Any] = {"summary": "Paid in full on 3 May, see [1].", "sources": ["doc-1"]}


def cheap_and_strong(openai_tier: Any, **cheap: Any) -> list[Tier]:
    return [openai_tier("gpt-4o-mini", **cheap), openai_tier("gpt-4o")]
