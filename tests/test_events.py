"""The event stream (``escalate.events``): hooks, stream() / astream(), streaming tiers'
partial answers, through the real SDKs over HTTP, sync and async, both providers."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from pydantic import BaseModel

from escalate import AllTiersFailed, Tier, escalating, receipt_of
from escalate.events import (
    AttemptFinished,
    Escalated,
    Event,
    Finished,
    MovedSideways,
    PartialAnswer,
    TierStarted,
    astream,
    set_hooks,
    stream,
)
from escalate.testing._server import Fault, ProviderServer, Reply

from .conftest import FAST_RETRY, KEY


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


# --- events ----------------------------------------------------------------------------------


def _script_a_busy_call(server: ProviderServer) -> None:
    server.script("cheap", Reply(data=ESCALATE))
    server.script("mid", Fault(503), Reply(data={"answer": {"answer": "ok"}}))


def _check_order(events: list[Event], tiers: list[Tier]) -> None:
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "TierStarted", "AttemptFinished", "Escalated",
        "TierStarted", "AttemptFinished", "MovedSideways",
        "TierStarted", "AttemptFinished", "Finished",
    ]  # fmt: skip
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.error is None
    receipt = finished.receipt
    assert finished.result == Verdict(answer="ok") and receipt_of(finished.result) == receipt
    attempts = [e.attempt for e in events if isinstance(e, AttemptFinished)]
    # The events tell the receipt's story, in the same order.
    assert [a.reask for a in attempts] == [a.reask for a in receipt.attempts]
    assert [a.tier for a in attempts] == [a.tier for a in receipt.attempts]
    escalated = next(e for e in events if isinstance(e, Escalated))
    assert (escalated.from_tier, escalated.to_tier) == (
        tiers[0].display_name,
        tiers[1].display_name,
    )
    assert escalated.question == "Explain renormalisation in QED."
    sideways = next(e for e in events if isinstance(e, MovedSideways))
    assert sideways.trigger == "server_error" and sideways.to_deployment == "spare"
    started = [e for e in events if isinstance(e, TierStarted)]
    assert [s.deployment for s in started] == [
        tiers[0].display_name,
        tiers[1].display_name,
        "spare",
    ]


def _with_spare(ladder: list[Tier]) -> list[Tier]:
    mid = ladder[1]
    spare = Tier(mid.model, base_url=mid.base_url, api_key=KEY, name="spare")
    return [
        ladder[0],
        Tier(mid.model, base_url=mid.base_url, api_key=KEY, fallbacks=[spare]),
        ladder[2],
    ]


def test_events_stream_in_order_and_match_the_receipt(
    server: ProviderServer, ladder: list[Tier], face: str
) -> None:
    tiers = _with_spare(ladder)
    _script_a_busy_call(server)
    retry = FAST_RETRY.__class__(attempts=1)

    if face == "sync":

        @escalating(tiers=tiers, response_model=Verdict, self_escalation=True, retry=retry)
        def ask(question: str) -> str:
            return question

        events = list(stream(ask, "Explain renormalisation in quantum electrodynamics."))
    else:

        @escalating(tiers=tiers, response_model=Verdict, self_escalation=True, retry=retry)
        async def ask_async(question: str) -> str:
            return question

        async def collect() -> list[Event]:
            return [e async for e in astream(ask_async, "Explain renormalisation.")]

        events = asyncio.run(collect())
    _check_order(events, tiers)


def test_a_stream_ends_with_the_error_after_its_events(
    server: ProviderServer, ladder: list[Tier]
) -> None:
    server.script("cheap", Reply(data={"x": 1}))

    @escalating(tiers=ladder[:1], response_model=Verdict)
    def ask(question: str) -> str:
        return question

    seen: list[Event] = []
    with pytest.raises(AllTiersFailed):
        for event in stream(ask, "q"):
            seen.append(event)
    finished = seen[-1]
    assert isinstance(finished, Finished) and isinstance(finished.error, AllTiersFailed)
    assert finished.receipt.outcome == "failed"


def test_hooks_see_every_call_and_a_failing_hook_breaks_nothing(
    build: Any, server: ProviderServer, ladder: list[Tier], caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Event] = []
    everything: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("the dashboard is down")

    server.script("cheap", Reply(data={"answer": "fine"}))
    ask = build(tiers=ladder, response_model=Verdict, hooks=[broken, seen.append])
    set_hooks([everything.append])
    try:
        with caplog.at_level(logging.WARNING, logger="escalate"):
            verdict = ask("q")
    finally:
        set_hooks([])

    assert verdict.answer == "fine"
    assert [type(e) for e in seen] == [TierStarted, AttemptFinished, Finished]
    assert [type(e) for e in everything] == [type(e) for e in seen]
    assert "the dashboard is down" in caplog.text


def test_a_passed_through_error_still_reaches_the_hooks(
    build: Any, server: ProviderServer, ladder: list[Tier]
) -> None:
    seen: list[Event] = []
    server.script("cheap", Fault(401))
    ask = build(tiers=ladder, response_model=Verdict, hooks=[seen.append])
    with pytest.raises(Exception, match="401"):
        ask("q")
    finished = seen[-1]
    assert isinstance(finished, Finished) and finished.receipt.outcome == "error"
    assert finished.receipt.attempts[0].status_code == 401


# --- streaming tiers ---------------------------------------------------------------------------


class Story(BaseModel):
    title: str
    body: str


def test_a_streaming_tier_sends_partial_answers_then_a_full_receipt(
    server: ProviderServer, provider: str, face: str
) -> None:
    url = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    cheap = Tier(f"{provider}/cheap", base_url=url, api_key=KEY, stream=True)
    strong = Tier(f"{provider}/strong", base_url=url, api_key=KEY, stream=True)
    body = "Once upon a time a cheap model told a story that was long enough to stream."
    server.script("cheap", Reply(data={"title": "Tale"}))  # no body: fails validation
    server.script("strong", Reply(data={"title": "Tale", "body": body}, output_tokens=40))

    if face == "sync":

        @escalating(tiers=[cheap, strong], response_model=Story)
        def tell(topic: str) -> str:
            return topic

        events = list(stream(tell, "a story"))
    else:

        @escalating(tiers=[cheap, strong], response_model=Story)
        async def tell_async(topic: str) -> str:
            return topic

        async def collect() -> list[Event]:
            return [e async for e in astream(tell_async, "a story")]

        events = asyncio.run(collect())

    partials = [e for e in events if isinstance(e, PartialAnswer)]
    strong_parts = [p.partial for p in partials if p.tier == strong.display_name]
    assert len(strong_parts) > 2  # it arrived in pieces
    lengths = [len(p.body or "") for p in strong_parts]
    assert lengths == sorted(lengths) and lengths[-1] == len(body)
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.result == Story(title="Tale", body=body)
    receipt = finished.receipt
    first, second = receipt.attempts
    assert (first.outcome, first.trigger) == ("rejected", "validation") and "body" in (
        first.reason or ""
    )
    assert second.served_model == "strong" and second.output_tokens == 40
    assert second.input_tokens and second.cost_usd is None  # "strong" is no priced model
    assert second.raw_output is not None and body in second.raw_output
    if provider == "openai":
        assert server.requests_for("strong")[0].body["stream_options"] == {"include_usage": True}
