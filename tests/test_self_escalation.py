"""Self-escalation (``self_escalation=``): a cheaper tier answers or asks to escalate, through
the real SDKs over HTTP, sync and async, both providers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from escalate import (
    AllTiersFailed,
    SelfEscalation,
    Tier,
    receipt_of,
)
from escalate.testing._server import ProviderServer, Reply

from .conftest import KEY


class Verdict(BaseModel):
    answer: str


ESCALATE = {
    "escalate": {
        "reason": "quantum field theory is beyond me",
        "question": "Explain renormalisation in QED.",
    }
}


@pytest.fixture(params=["openai", "anthropic"])
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ladder(server: ProviderServer, provider: str) -> list[Tier]:
    """cheap, mid, strong of one provider."""
    url = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    return [Tier(f"{provider}/{m}", base_url=url, api_key=KEY) for m in ("cheap", "mid", "strong")]


def body_text(server: ProviderServer, model: str, index: int = 0) -> str:
    return json.dumps(server.requests_for(model)[index].body)


def test_the_cheap_tier_answers_directly(
    build: Any, server: ProviderServer, ladder: list[Tier]
) -> None:
    server.script("cheap", Reply(data={"answer": {"answer": "Paris"}}))
    ask = build(tiers=ladder, response_model=Verdict, self_escalation=True)

    verdict = ask("What is the capital of France?")

    assert verdict == Verdict(answer="Paris") and type(verdict) is Verdict
    receipt = receipt_of(verdict)
    assert receipt.answered_by == ladder[0].display_name and not receipt.escalated
    sent = body_text(server, "cheap")
    assert "stronger one stands behind you" in sent and '"escalate"' in sent


def test_an_escalation_hands_over_a_clean_conversation(
    build: Any, server: ProviderServer, ladder: list[Tier]
) -> None:
    server.script("cheap", Reply(data=ESCALATE))
    server.script("strong", Reply(data={"answer": "Renormalisation absorbs..."}))
    tiers = [ladder[0], ladder[2]]
    ask = build(tiers=tiers, response_model=Verdict, self_escalation=True)

    verdict = ask("Explain renormalisation in quantum electrodynamics.")

    receipt = receipt_of(verdict)
    assert receipt.answered_by == tiers[1].display_name
    first = receipt.attempts[0]
    assert (first.outcome, first.trigger) == ("rejected", "self_escalation")
    assert first.reason == "the model asked to escalate: quantum field theory is beyond me"
    (move,) = receipt.escalations
    assert move.trigger == "self_escalation" and move.question == "Explain renormalisation in QED."
    assert (receipt.self_escalations, receipt.spent_attempts) == (1, 1)
    # The strong tier sees the user's conversation and nothing of the cheap tier's turn:
    # not its policy prompt, not its answer, not its escalate call.
    strong = body_text(server, "strong")
    assert "Explain renormalisation in quantum electrodynamics." in strong
    for leaked in ("stronger one stands behind you", "beyond me", "in QED", '"escalate"'):
        assert leaked not in strong
    messages = server.requests_for("strong")[0].body["messages"]
    assert [m["role"] for m in messages] == ["user"]


def test_the_strongest_tier_is_never_offered_the_option(
    build: Any, server: ProviderServer, ladder: list[Tier]
) -> None:
    server.script("cheap", Reply(data=ESCALATE))
    server.script("mid", Reply(data=ESCALATE))
    server.script("strong", Reply(data={"answer": "42"}))
    ask = build(tiers=ladder, response_model=Verdict, self_escalation=True)

    verdict = ask("q")

    assert verdict.answer == "42"
    strong = body_text(server, "strong")
    assert '"escalate"' not in strong and SelfEscalation.DEFAULT_POLICY[:40] not in strong
    assert [m.trigger for m in receipt_of(verdict).escalations] == [
        "self_escalation",
        "self_escalation",
    ]


def test_the_loop_guard_bounds_self_escalations(
    build: Any, server: ProviderServer, ladder: list[Tier]
) -> None:
    server.script("cheap", Reply(data=ESCALATE))
    server.script("mid", Reply(data={"answer": "mid answers"}))
    option = SelfEscalation(max_per_call=1, policy="Escalate anything about physics.")
    ask = build(tiers=ladder, response_model=Verdict, self_escalation=option)

    assert ask("q").answer == "mid answers"
    assert "Escalate anything about physics." in body_text(server, "cheap")
    assert '"escalate"' not in body_text(server, "mid")  # guard reached: must answer


def test_plain_text_answers_with_the_option(
    build: Any, server: ProviderServer, ladder: list[Tier]
) -> None:
    server.script("cheap", Reply(data=ESCALATE))
    server.script("mid", Reply(data={"answer": "A long answer about QED."}))
    ask = build(tiers=ladder, response_model=str, self_escalation=True)

    text = ask("q")

    assert text == "A long answer about QED." and isinstance(text, str)
    assert receipt_of(text).answered_by == ladder[1].display_name


def test_when_every_tier_asks_the_error_says_so(
    build: Any, server: ProviderServer, ladder: list[Tier]
) -> None:
    server.script("cheap", Reply(data=ESCALATE))
    server.script("mid", Reply(data=ESCALATE))
    server.script("strong", Reply(data={"nothing": 1}))
    with pytest.raises(AllTiersFailed) as raised:
        build(tiers=ladder, response_model=Verdict, self_escalation=True)("q")
    assert [a.trigger for a in raised.value.receipt.attempts] == [
        "self_escalation",
        "self_escalation",
        "validation",
    ]
