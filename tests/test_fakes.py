"""The fake tiers in-process: every path a ScriptedTier can play, a FunctionTier's answers,
and each misuse of the fakes with the message a user would read, through the sync and the
async face where both exist."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from escalate import (
    ConfigurationError,
    Price,
    Retry,
    escalating,
    receipt_of,
)
from escalate.exceptions import BudgetExceeded
from escalate.gates import GateContext, Rejected
from escalate.testing import (
    Drop,
    Fault,
    FunctionTier,
    Malformed,
    Reply,
    ScriptedFault,
    ScriptedTier,
    ScriptExhausted,
    Timeout,
    assert_answered_by,
    assert_cost_at_most,
    assert_escalated,
    assert_not_escalated,
    assert_tiers,
)
from tests.kit_support import CHEAP, STRONG, Invoice, fails, run

# --- ScriptedTier: every path -------------------------------------------------------------


def test_the_cheap_tier_passing_gives_a_real_receipt_with_the_scripted_usage(face: str) -> None:
    cheap = ScriptedTier(
        "cheap", Reply(data={"total": 12}, input_tokens=1000, output_tokens=50), price=CHEAP
    )
    strong = ScriptedTier("strong")  # no items: it must never be called

    invoice = run(face, [cheap, strong])

    assert invoice == Invoice(total=12)
    receipt = receipt_of(invoice)
    (attempt,) = receipt.attempts
    assert (attempt.tier, attempt.provider, attempt.outcome) == ("cheap", "fake", "answered")
    assert (attempt.input_tokens, attempt.output_tokens) == (1000, 50)
    assert attempt.cost_usd == Decimal("0.0011")  # 1000 * $1/M + 50 * $2/M
    assert attempt.cost_source == "tier price"
    assert attempt.raw_output == '{"total": 12}'
    assert_tiers(invoice, ["cheap"])
    assert_answered_by(invoice, "cheap")
    assert_not_escalated(invoice)
    assert_cost_at_most(invoice, "0.0011")
    assert cheap.calls == [[{"role": "user", "content": "Extract: invoice 1"}]]
    assert cheap.remaining == 0


def test_an_answer_that_fails_validation_escalates_with_pydantics_reason(face: str) -> None:
    # instructor validates strictly: "12" is not an int, so the fake refuses it too.
    cheap = ScriptedTier("cheap", {"total": "12"}, price=CHEAP)
    strong = ScriptedTier("strong", Invoice(total=12), price=STRONG)

    invoice = run(face, [cheap, strong])

    assert invoice == Invoice(total=12)
    assert_escalated(invoice, trigger="validation", reason_contains="total", to_tier="strong")
    assert_tiers(invoice, ["cheap", "strong"])
    rejected = receipt_of(invoice).attempts[0]
    assert (rejected.outcome, rejected.trigger) == ("rejected", "validation")
    assert rejected.reason == "total: Input should be a valid integer"
    assert rejected.raw_output == '{"total": "12"}'
    assert rejected.cost_usd is not None and rejected.cost_usd > 0  # bad answers are billed


def test_raw_output_that_is_not_json_is_a_validation_failure(face: str) -> None:
    error = fails(face, [ScriptedTier("only", "Sure! The total is 12.", price=CHEAP)])

    (attempt,) = receipt_of(error).attempts
    assert attempt.trigger == "validation"
    assert attempt.reason is not None and "Invalid JSON" in attempt.reason
    assert isinstance(error.__cause__, ValidationError)


def test_a_scripted_rate_limit_is_retried_on_the_same_tier_honouring_retry_after(
    face: str,
) -> None:
    cheap = ScriptedTier("cheap", Fault(429, retry_after=0), {"total": 3}, price=CHEAP)

    invoice = run(face, [cheap, ScriptedTier("strong")])

    assert_not_escalated(invoice)
    attempts = receipt_of(invoice).attempts
    assert [(a.outcome, a.trigger, a.status_code) for a in attempts] == [
        ("provider_error", "rate_limit", 429),
        ("answered", None, None),
    ]
    assert attempts[0].cost_usd == 0 and attempts[0].input_tokens is None


@pytest.mark.parametrize(
    ("item", "trigger"),
    [
        (Fault(500), "server_error"),
        (Fault(529), "overloaded"),
        (Drop(), "connection"),
        (Malformed(), "bad_response"),
        (Timeout(), "timeout"),
    ],
)
def test_a_provider_that_keeps_failing_is_retried_then_left_for_the_next_tier(
    item: object, trigger: str
) -> None:
    cheap = ScriptedTier("cheap", item, item, item)
    strong = ScriptedTier("strong", {"total": 1}, price=STRONG)

    invoice = run("sync", [cheap, strong])

    assert_escalated(invoice, trigger=trigger, from_tier="cheap")
    assert [a.trigger for a in receipt_of(invoice).attempts] == [trigger] * 3 + [None]


def test_a_timeout_leaves_the_cost_unknown_and_the_cost_assertion_says_why() -> None:
    tiers = [ScriptedTier("a", Timeout()), ScriptedTier("b", {"total": 1})]
    invoice = run("sync", tiers, retry=Retry(attempts=1))

    assert receipt_of(invoice).cost_usd is None
    with pytest.raises(AssertionError, match="cost is unknown") as caught:
        assert_cost_at_most(invoice, 1)
    assert "timed out" in str(caught.value)


def test_every_tier_failing_raises_all_tiers_failed_with_the_whole_path(face: str) -> None:
    error = fails(
        face,
        [ScriptedTier("cheap", {"total": "x"}), ScriptedTier("strong", {"currency": "EUR"})],
    )

    assert_tiers(error, ["cheap", "strong"])
    assert_escalated(error, trigger="validation", reason_contains="total: Input should be")
    receipt = receipt_of(error)
    assert receipt.outcome == "failed" and len(receipt.moves) == 1  # no move to nowhere
    assert receipt.attempts[-1].reason == "total: Field required"


def test_a_scripted_exception_reaches_the_caller_unchanged(face: str) -> None:
    boom = KeyError("no such invoice")

    with pytest.raises(KeyError) as caught:
        run(face, [ScriptedTier("cheap", boom), ScriptedTier("strong", {"total": 1})])

    assert caught.value is boom


def test_a_scripted_exception_that_on_matches_escalates() -> None:
    cheap = ScriptedTier("cheap", KeyError("no such invoice"))

    invoice = run("sync", [cheap, ScriptedTier("strong", {"total": 1})], on=KeyError)

    assert_escalated(invoice, trigger="on", reason_contains="no such invoice")


def test_a_status_that_is_not_transient_passes_through_like_a_real_401() -> None:
    with pytest.raises(ScriptedFault, match="HTTP 401") as caught:
        run("sync", [ScriptedTier("cheap", Fault(401)), ScriptedTier("strong", {"total": 1})])

    assert caught.value.status == 401


def test_a_truncated_answer_is_a_quality_failure() -> None:
    cheap = ScriptedTier("cheap", Reply(data={"total": 1}, finish_reason="length"))

    invoice = run("sync", [cheap, ScriptedTier("strong", {"total": 1})])

    assert_escalated(invoice, trigger="truncated", reason_contains="token limit")


def test_reasks_play_the_next_item_on_the_same_tier_and_show_the_error(face: str) -> None:
    cheap = ScriptedTier("cheap", {"total": "x"}, {"total": 4}, max_reasks=1, price=CHEAP)

    invoice = run(face, [cheap])

    assert invoice.total == 4
    assert [(a.reask, a.outcome) for a in receipt_of(invoice).attempts] == [
        (0, "rejected"),
        (1, "answered"),
    ]
    reask = cheap.calls[1]
    assert reask[-2] == {"role": "assistant", "content": '{"total": "x"}'}
    assert "total: Input should be a valid integer" in reask[-1]["content"]


def test_served_models_genai_prices_knows_are_priced_like_real_tiers() -> None:
    million = Reply(data={"total": 1}, input_tokens=1_000_000, output_tokens=1_000_000)
    cheap = ScriptedTier("cheap", million, served_model="gpt-4o-mini")
    claude = ScriptedTier("claude", million, served_model="claude-haiku-4-5")

    first = run("sync", [cheap])
    second = run("sync", [claude])

    assert receipt_of(first).cost_usd == Decimal("0.75")  # $0.15 + $0.60
    assert receipt_of(second).cost_usd == Decimal("6")  # $1 + $5
    attempt = receipt_of(first).attempts[0]
    assert (attempt.served_model, attempt.cost_source) == ("gpt-4o-mini", "genai-prices")


def test_an_unpriced_fake_has_an_unknown_cost_and_says_how_to_price_it() -> None:
    invoice = run("sync", [ScriptedTier("cheap", {"total": 1})])

    attempt = receipt_of(invoice).attempts[0]
    assert attempt.cost_usd is None
    assert attempt.cost_note is not None and "price=Price(...)" in attempt.cost_note
    # Unscripted usage is estimated at four characters a token.
    assert attempt.input_tokens == round(len("Extract: invoice 1") / 4)
    assert attempt.output_tokens == round(len('{"total": 1}') / 4)


def test_a_budget_counts_a_fakes_price() -> None:
    cheap = ScriptedTier("cheap", Reply(data={"total": "x"}, input_tokens=100), price=CHEAP)
    strong = ScriptedTier("strong", {"total": 1}, price=Price(input=1_000_000, output=0))

    with pytest.raises(BudgetExceeded) as caught:
        run("sync", [cheap, strong], budget_usd="0.01")

    assert "stopped before tier 'strong'" in " ".join(receipt_of(caught.value).notes)
    assert strong.remaining == 1


def test_a_tier_gate_on_a_fake_rejects_and_escalates(face: str) -> None:
    def positive(answer: Invoice, context: GateContext) -> None:
        if answer.total <= 0:
            raise Rejected("the total must be positive")

    cheap = ScriptedTier("cheap", {"total": -3}, gates=[positive])

    invoice = run(face, [cheap, ScriptedTier("strong", {"total": 3})])

    assert_escalated(invoice, trigger="gate", reason_contains="must be positive")


def test_running_past_the_script_fails_the_test_naming_the_tier_and_the_request(
    face: str,
) -> None:
    cheap = ScriptedTier("cheap", {"total": "x"})

    with pytest.raises(ScriptExhausted) as caught:
        run(face, [cheap, ScriptedTier("strong")], text="the unexpected one")

    message = str(caught.value)
    assert "ScriptedTier('strong') was asked for answer 1, but its script holds 0" in message
    assert "Extract: the unexpected one" in message
    assert isinstance(caught.value, AssertionError)


def test_delays_make_concurrent_async_calls_interleave() -> None:
    slow = ScriptedTier("slow", Reply(data={"total": 1}, delay=0.05))
    fast = ScriptedTier("fast", Reply(data={"total": 2}))

    async def both() -> list[Any]:
        return list(await asyncio.gather(_async_call([slow]), _async_call([fast])))

    first, second = asyncio.run(both())
    assert (first.total, second.total) == (1, 2)
    assert receipt_of(first).attempts[0].latency_s >= 0.05


async def _async_call(tiers: list[Any]) -> Any:
    @escalating(tiers=tiers, response_model=Invoice)
    async def extract(text: str) -> str:
        return text

    return await extract("x")


# --- FunctionTier ----------------------------------------------------------------------------


def test_a_function_tier_answers_from_the_messages(face: str) -> None:
    def answer(messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"total": len(messages[-1]["content"])}

    invoice = run(face, [FunctionTier("echo", answer, price=CHEAP)], text="12345")

    assert invoice.total == len("Extract: 12345")
    assert_answered_by(invoice, "echo")


def test_an_async_function_tier_serves_async_functions() -> None:
    async def answer(messages: list[dict[str, Any]]) -> Reply:
        await asyncio.sleep(0)
        return Reply(data={"total": 7}, input_tokens=10, output_tokens=2)

    invoice = run("async", [FunctionTier("async", answer, price=CHEAP)])

    assert invoice.total == 7
    assert receipt_of(invoice).attempts[0].cost_usd == Decimal("0.000014")


def test_a_function_tier_can_fail_like_a_provider_or_raise(face: str) -> None:
    replies = iter([Fault(503), {"total": 5}])
    flaky = FunctionTier("flaky", lambda messages: next(replies))

    invoice = run(face, [flaky])

    assert [a.trigger for a in receipt_of(invoice).attempts] == ["server_error", None]

    def broken(messages: list[dict[str, Any]]) -> object:
        raise LookupError("the test's own bug")

    with pytest.raises(LookupError, match="the test's own bug"):
        run(face, [FunctionTier("broken", broken)])


def test_an_async_function_tier_on_a_sync_function_is_refused_when_decorating() -> None:
    async def answer(messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"total": 1}

    with pytest.raises(ConfigurationError, match="has an async fn, but the escalating"):
        run("sync", [FunctionTier("async", answer)])


def test_a_function_returning_something_unplayable_says_what_it_may_return() -> None:
    with pytest.raises(TypeError, match=r"fn returned a bad answer: got 42; a script item is"):
        run("sync", [FunctionTier("bad", lambda messages: 42)])


# --- misuse of the fakes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ScriptedTier("", {"total": 1}), "name must be a non-empty str"),
        (lambda: ScriptedTier("t", ValueError), r"exception instance, e\.g\. ValueError"),
        (lambda: ScriptedTier("t", object()), "a script item is an answer"),
        (lambda: ScriptedTier("t", Reply(refusal="no")), r"cannot play Reply\(refusal"),
        (lambda: ScriptedTier("t", price=0.5), r"price must be a Price"),  # type: ignore[arg-type]
        (lambda: ScriptedTier("t", max_reasks=-1), "max_reasks must be an int >= 0"),
        (lambda: ScriptedTier("t", served_model=""), "served_model must be a model name"),
        (lambda: FunctionTier("t", "not callable"), "fn must be a function"),  # type: ignore[arg-type]
    ],
)
def test_a_badly_built_fake_says_what_is_wrong(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make()
