"""Shared by the learned gate's tests: a two-tier function answering numbered questions
through the real openai SDK, instructor and the local provider server, whose cheap tier
writes its right and wrong answers differently (so a gate can learn which is which), and
the store fixtures of tests/store (SQLite, and PostgreSQL via ESCALATE_TEST_POSTGRES)."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from pydantic import BaseModel

from escalate import Audit, Tier, escalating
from escalate.calibrate import score_gate
from escalate.gates import GateContext
from escalate.testing._server import ProviderServer, Reply, Request
from tests.conftest import KEY
from tests.store.conftest import postgres_server, postgres_url, store_url, use_store

__all__ = [
    "CHEAP",
    "STRONG",
    "Answer",
    "cheap_answer",
    "make_solver",
    "postgres_server",
    "postgres_url",
    "question",
    "store_url",
    "use_store",
]

CHEAP, STRONG = "gpt-4o-mini", "gpt-4o"
_NUMBER = re.compile(r"question (\d+)")
_FILLER = [
    "apples",
    "pears",
    "boxes",
    "crates",
    "the",
    "farmer",
    "sells",
    "each",
    "week",
    "and",
    "buys",
    "some",
    "more",
    "at",
    "the",
    "market",
    "then",
    "gives",
    "half",
    "away",
    "to",
    "friends",
    "who",
    "live",
    "nearby",
]


class Answer(BaseModel):
    value: int
    reasoning: str


def question(i: int) -> str:
    return f"How many items are there in question {i}?"


def is_right(i: int) -> bool:
    """The cheap tier is right on two questions in three."""
    return i % 3 != 0


def is_short(i: int) -> bool:
    """On one question in five its reasoning is too short for the length gate."""
    return i % 5 == 0


def cheap_answer(i: int) -> dict[str, Any]:
    """The cheap tier's answer to question ``i``: a right one reasons step by step and
    checks, a wrong one guesses; either way some filler of its own."""
    rng = random.Random(i)
    filler = " ".join(rng.choice(_FILLER) for _ in range(12))
    if is_short(i):
        reasoning = "about that"
    elif is_right(i):
        reasoning = f"{filler}. I worked it out step by step and checked the total twice."
    else:
        reasoning = f"{filler}. I would guess it is roughly this, maybe, not sure."
    return {"value": i if is_right(i) else i + 1, "reasoning": reasoning}


def length(answer: Answer, context: GateContext) -> float:
    """A mechanical gate's score: the reasoning's length, up to 1 at ten words."""
    return min(1.0, len(answer.reasoning.split()) / 10)


def serve(server: ProviderServer) -> ProviderServer:
    def number(request: Request) -> int:
        found = _NUMBER.search(request.last_user_text)
        assert found is not None, request.last_user_text
        return int(found.group(1))

    server.respond(CHEAP, lambda request: Reply(data=cheap_answer(number(request))))
    server.respond(
        STRONG,
        lambda request: Reply(
            data={"value": number(request), "reasoning": "Counted them all: that many."}
        ),
    )
    return server


def make_solver(
    server: ProviderServer,
    gates: Sequence[Any] = (),
    *,
    name: str = "solve",
    length_at: float = 0.5,
    is_async: bool = False,
    audit: Audit | None = None,
) -> Callable[[str], Any]:
    """The function a user writes: the cheap tier with the length gate (at ``length_at``)
    and then ``gates``, the strong tier above it."""
    cheap_gates = [score_gate(length, length_at, name="length")]
    tiers = [
        Tier(
            f"openai/{CHEAP}",
            name="cheap",
            base_url=server.openai_base_url,
            api_key=KEY,
            gates=[*cheap_gates, *gates],
        ),
        Tier(f"openai/{STRONG}", name="strong", base_url=server.openai_base_url, api_key=KEY),
    ]

    def solve(text: str) -> str:
        return f"Answer the question: {text}"

    async def solve_async(text: str) -> str:
        return f"Answer the question: {text}"

    prompt: Callable[[str], Any] = solve_async if is_async else solve
    prompt.__name__ = prompt.__qualname__ = name
    return escalating(tiers=tiers, response_model=Answer, audit=audit)(prompt)


@pytest.fixture
def served(server: ProviderServer) -> ProviderServer:
    return serve(server)
