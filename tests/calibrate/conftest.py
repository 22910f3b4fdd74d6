"""Shared by the calibration tests: a two-tier function answering six questions through the
real SDKs and the local provider server, and the observations of it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from escalate import Tier, escalating
from escalate.calibrate import Item, Observations, collect, score_gate
from escalate.gates import GateContext, Rejected
from escalate.testing._server import ProviderServer, Reply, Request

from ..conftest import KEY

CHEAP, STRONG = "gpt-4o-mini", "claude-sonnet-4-5"


class Answer(BaseModel):
    value: int
    confidence: float


# question -> (the cheap tier's answer, the strong tier's answer); the right value is the
# number in the question. Scores are the cheap tier's confidence.
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "q1": ({"value": 1, "confidence": 0.95}, {"value": 1, "confidence": 0.99}),  # right, sure
    "q2": ({"value": 2, "confidence": 0.6}, {"value": 2, "confidence": 0.99}),  # right, unsure
    "q3": ({"value": 0, "confidence": 0.9}, {"value": 3, "confidence": 0.99}),  # wrong, sure
    "q4": ({"value": 0, "confidence": 0.3}, {"value": 9, "confidence": 0.99}),  # both wrong
    "q5": ({"value": "five", "confidence": 0.99}, {"value": 5, "confidence": 0.99}),  # invalid
    "q6": ({"value": 6, "confidence": 0.8}, {"value": 6, "confidence": 0.99}),  # right, unsure
}
ITEMS = [Item(args=(q,), expected=int(q[1:]), id=q) for q in CASES]


def confidence(answer: Answer, context: GateContext) -> float:
    return answer.confidence


def not_zero(answer: Answer, context: GateContext) -> None:
    """Another gate, after the calibrated one: its rejections do not depend on the threshold."""
    if answer.value < 0:
        raise Rejected("negative")


@pytest.fixture
def served(server: ProviderServer) -> ProviderServer:
    def answer(strong: bool) -> Callable[[Request], Reply]:
        def reply(request: Request) -> Reply:
            question = request.last_user_text.rpartition(": ")[2]
            return Reply(data=CASES[question][strong])

        return reply

    server.respond(CHEAP, answer(False))
    server.respond(STRONG, answer(True))
    return server


def make_solver(
    server: ProviderServer, at: float = 0.5, *, is_async: bool = False
) -> Callable[..., Any]:
    tiers = [
        Tier(
            f"openai/{CHEAP}",
            base_url=server.openai_base_url,
            api_key=KEY,
            gates=[score_gate(confidence, at, name="confidence"), not_zero],
        ),
        Tier(f"anthropic/{STRONG}", base_url=server.anthropic_base_url, api_key=KEY),
    ]
    if is_async:

        async def solve_async(question: str) -> str:
            return f"Answer the question: {question}"

        return escalating(tiers=tiers, response_model=Answer)(solve_async)

    def solve(question: str) -> str:
        return f"Answer the question: {question}"

    return escalating(tiers=tiers, response_model=Answer)(solve)


@pytest.fixture
def observed(served: ProviderServer) -> Observations:
    return collect(make_solver(served), ITEMS, gate="confidence", expected_field="value")
