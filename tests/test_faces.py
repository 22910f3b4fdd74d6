"""What stops a step is handed to the engine: a gate's bug, an error no trigger matches, a
cancellation, Ctrl-C. The call raises the same exception, and its receipt (every attempt
paid for) is reachable from it, and hooks see Finished. Over the real SDKs and HTTP."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import openai
import pytest
from pydantic import BaseModel

from escalate import ConfigurationError, Receipt, Tier, escalating, events, receipt_of
from escalate.events import AttemptFinished, Event, Finished
from escalate.gates import GateContext
from escalate.testing._server import Fault, ProviderServer, Reply

from .conftest import FAST_RETRY


class Invoice(BaseModel):
    total: int


@pytest.fixture(params=["openai", "anthropic"])
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pair(
    provider: str, openai_tier: Callable[..., Tier], anthropic_tier: Callable[..., Tier]
) -> tuple[Tier, Tier]:
    if provider == "openai":
        return openai_tier("gpt-4o-mini"), openai_tier("gpt-4o")
    return anthropic_tier("claude-haiku-4-5"), anthropic_tier("claude-sonnet-4-5")


def _model(tier: Tier) -> str:
    return tier.model.partition("/")[2]


@pytest.fixture
def finished() -> Iterator[list[Finished]]:
    seen: list[Finished] = []

    def hook(event: Event) -> None:
        if isinstance(event, Finished):
            seen.append(event)

    events.set_hooks([hook])
    yield seen
    events.set_hooks([])


def test_a_gate_that_raises_keeps_the_receipt_and_the_error(
    build: Callable[..., Callable[..., Any]],
    server: ProviderServer,
    pair: tuple[Tier, Tier],
    finished: list[Finished],
) -> None:
    def buggy(answer: Invoice, context: GateContext) -> None:
        raise KeyError("customer")

    server.script(_model(pair[0]), Reply(data={"total": 3}))
    with pytest.raises(KeyError) as raised:
        build(tiers=list(pair), response_model=Invoice, gates=[buggy])("x")

    receipt = receipt_of(raised.value)
    assert raised.value.args == ("customer",)  # the same error, unchanged
    assert receipt.outcome == "error" and len(receipt.attempts) == 1
    assert receipt.attempts[0].cost_usd is not None and receipt.attempts[0].cost_usd > 0
    assert [f.receipt for f in finished] == [receipt] and finished[0].error is raised.value


@pytest.mark.parametrize("score", [True, float("nan"), float("inf")])
def test_a_gate_returning_a_non_score_is_named_and_keeps_the_receipt(
    build: Callable[..., Callable[..., Any]],
    server: ProviderServer,
    pair: tuple[Tier, Tier],
    score: object,
) -> None:
    def odd(answer: Invoice, context: GateContext) -> object:
        return score

    server.script(_model(pair[0]), Reply(data={"total": 3}))
    with pytest.raises(TypeError, match=r"gate odd returned .*a score must be a finite") as raised:
        build(tiers=list(pair), response_model=Invoice, gates=[odd])("x")
    receipt = receipt_of(raised.value)  # nan once broke the receipt's JSON round trip
    assert Receipt.from_json(receipt.to_json()) == receipt and len(receipt.attempts) == 1


def test_an_unmatched_provider_error_passes_through_with_the_spend_before_it(
    build: Callable[..., Callable[..., Any]],
    server: ProviderServer,
    provider: str,
    pair: tuple[Tier, Tier],
) -> None:
    server.script(_model(pair[0]), Reply(data={"total": "twelve"}))  # fails validation
    server.script(_model(pair[1]), Fault(401))
    sdk = openai if provider == "openai" else anthropic
    with pytest.raises(sdk.AuthenticationError) as raised:
        build(tiers=list(pair), response_model=Invoice, retry=FAST_RETRY)("x")

    receipt = receipt_of(raised.value)
    assert [(a.tier, a.outcome) for a in receipt.attempts] == [
        (pair[0].display_name, "rejected"),
        (pair[1].display_name, "error"),
    ]
    assert receipt.outcome == "error" and receipt.escalated
    assert len(server.requests) == 2


def test_a_cancelled_task_ends_with_a_cancelled_receipt(
    server: ProviderServer, pair: tuple[Tier, Tier], finished: list[Finished]
) -> None:
    server.script(_model(pair[0]), Reply(data={"total": "twelve"}))
    server.script(_model(pair[1]), Reply(data={"total": 3}, delay=5))

    @escalating(tiers=list(pair), response_model=Invoice)
    async def extract(text: str) -> str:
        return text

    async def main() -> BaseException:
        task = asyncio.create_task(extract("x"))
        while len(server.requests) < 2:  # noqa: ASYNC110 - the server is in another thread
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError) as raised:
            await task
        return raised.value

    error = asyncio.run(main())
    receipt = receipt_of(error)
    assert receipt.outcome == "cancelled"
    assert [a.outcome for a in receipt.attempts] == ["rejected", "cancelled"]
    assert receipt.attempts[1].cost_usd is None and receipt.attempts[1].trigger == "cancelled"
    assert [f.receipt.outcome for f in finished] == ["cancelled"]


def test_wait_for_timing_out_keeps_the_receipt_reachable(
    server: ProviderServer, pair: tuple[Tier, Tier]
) -> None:
    server.script(_model(pair[0]), Reply(data={"total": 3}, delay=5))

    @escalating(tiers=list(pair), response_model=Invoice)
    async def extract(text: str) -> str:
        return text

    async def main() -> None:
        await asyncio.wait_for(extract("x"), timeout=0.3)

    with pytest.raises(TimeoutError) as raised:
        asyncio.run(main())
    receipt = receipt_of(raised.value)  # found through the TimeoutError's cause
    assert receipt.outcome == "cancelled" and receipt.attempts[0].outcome == "cancelled"


def test_ctrl_c_during_a_backoff_ends_with_a_cancelled_receipt(
    server: ProviderServer, pair: tuple[Tier, Tier], finished: list[Finished]
) -> None:
    server.script(_model(pair[0]), Fault(429, retry_after=5))

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(KeyboardInterrupt) as raised:
            escalating(tiers=list(pair), response_model=Invoice)(lambda text: text)("x")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    receipt = receipt_of(raised.value)
    assert receipt.outcome == "cancelled"
    assert [a.outcome for a in receipt.attempts] == ["provider_error"]  # asleep, not in flight
    assert "cancelled" in receipt.notes[-1]
    assert finished and finished[0].receipt == receipt


def test_an_abandoned_astream_stops_the_call(
    server: ProviderServer, pair: tuple[Tier, Tier]
) -> None:
    server.script(_model(pair[0]), Reply(data={"total": "twelve"}, delay=0.2))
    server.script(_model(pair[1]), Reply(data={"total": 3}, delay=0.5))

    @escalating(tiers=list(pair), response_model=Invoice)
    async def extract(text: str) -> str:
        return text

    async def main() -> None:
        stream = events.astream(extract, "x")
        async for event in stream:
            if isinstance(event, AttemptFinished):
                break  # the consumer stops listening after the cheap tier's answer
        await stream.aclose()
        await asyncio.sleep(0.8)  # time enough for the strong tier's answer, had it been asked

    asyncio.run(main())
    assert len(server.requests_for(_model(pair[0]))) == 1
    assert server.requests_for(_model(pair[1])) == []  # the call stopped with its consumer


def test_async_hooks_are_refused_where_they_are_given() -> None:
    async def hook(event: Event) -> None:
        pass

    with pytest.raises(TypeError, match="is async, and hooks are called synchronously"):
        events.set_hooks([hook])
    with pytest.raises(ConfigurationError, match="is async"):
        escalating(tiers=["openai/gpt-4o-mini"], response_model=Invoice, hooks=[hook])


def test_escalating_applied_bare_says_to_pass_keyword_arguments() -> None:
    def extract(text: str) -> str:
        return text

    with pytest.raises(ConfigurationError, match=r"@escalating\(tiers=\[...\], response_model"):
        escalating(extract)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ([{"role": "user", "content": 123}], "content of type int"),
        ([{"role": "user", "content": None}], "has no content"),
        ([{"role": "robot", "content": "hi"}], "each message is a dict with 'role'"),
    ],
)
def test_bad_messages_are_named_before_any_request(
    server: ProviderServer, pair: tuple[Tier, Tier], prompt: Any, message: str
) -> None:
    extract = escalating(tiers=list(pair), response_model=Invoice)(lambda: prompt)
    with pytest.raises(TypeError, match=message):
        extract()
    assert server.requests == []
