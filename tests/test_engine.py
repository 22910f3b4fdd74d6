"""The decision core alone: ``escalate._engine.walk`` driven by hand with canned outcomes.

No HTTP, no face, no SDK: the test plays the face. It reads each step the walk yields,
``send``s back the outcome it chooses (hand-made ``Answered`` / ``Failed`` with hand-made
attempts), or ``throw``s in what stopped a step. The deployments and tiers below satisfy
``escalate._plan.Backend`` / ``EngineTier`` and are never called: the engine does no I/O,
which is why every decision can be checked here step by step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ValidationError

from escalate import (
    AllTiersFailed,
    BudgetExceeded,
    ProviderExhausted,
    Receipt,
    Retry,
    SelfEscalation,
    receipt_of,
)
from escalate._answers import shape_of
from escalate._breaker import Breaker
from escalate._checks import as_trigger
from escalate._engine import walk
from escalate._outcomes import Answered, Failed
from escalate._plan import (
    Backend,
    Call,
    CallInfo,
    Check,
    EngineTier,
    Plan,
    Sample,
    Sleep,
    Verdict,
)
from escalate._receipt import Attempt, Route
from escalate._self_escalation import SelfEscalationRequest, choice_model
from escalate.events import AttemptFinished, Escalated, Finished, MovedSideways, TierStarted
from escalate.gates import Rejected

MESSAGES = [{"role": "user", "content": "What is the invoice total?"}]
NO_JITTER = Retry(attempts=3, initial=0.5, max=8.0, jitter=0, max_retry_after=30.0)


class Invoice(BaseModel):
    total: float


# --- a minimal deployment and tier: plain data, never called -------------------------------


@dataclass(frozen=True)
class Deployment:
    name: str
    provider_name: str = "fake"
    model: str = "fake-model"
    streams: bool = False
    usd_per_token: Decimal | None = None

    @property
    def breaker_key(self) -> Hashable:
        return ("fake", self.name)

    def check_flavour(self, is_async: bool) -> None:
        return None

    def estimate_cost(self, input_tokens: int, output_tokens: int) -> Decimal | None:
        if self.usd_per_token is None:
            return None
        return (input_tokens + output_tokens) * self.usd_per_token

    def call_sync(self, messages: Any, response_model: Any, **_: Any) -> Any:
        raise AssertionError("the engine never calls a deployment: the face does")

    async def call_async(self, messages: Any, response_model: Any, **_: Any) -> Any:
        raise AssertionError("the engine never calls a deployment: the face does")


@dataclass(frozen=True)
class FakeTier:
    name: str
    deployments: tuple[Backend, ...]
    gates: tuple[Any, ...] = ()
    gate_reasks: int = 0
    on_timeout: Literal["retry", "escalate"] = "retry"
    breaker: Breaker | None = None  # the engine's walk is tested without breakers


def tier(name: str, *deployments: str, **settings: Any) -> FakeTier:
    return FakeTier(name, tuple(Deployment(d) for d in deployments or (f"{name}-1",)), **settings)


def plan(*tiers: EngineTier, **settings: Any) -> Plan:
    settings.setdefault("retry", NO_JITTER)
    settings.setdefault("on", as_trigger(ValidationError))
    return Plan(
        function="tests.test_engine.extract", tiers=tiers, answer=shape_of(Invoice), **settings
    )


def test_the_fakes_are_what_the_engine_expects() -> None:
    assert isinstance(Deployment("d"), Backend)


# --- canned outcomes ------------------------------------------------------------------------


def attempt(step: Call, outcome: str = "answered", **fields: Any) -> Attempt:
    fields.setdefault("cost_usd", Decimal("0.001"))
    fields.setdefault("input_tokens", 100)
    fields.setdefault("output_tokens", 20)
    return Attempt(
        tier=step.deployment.name.split("-")[
            0
        ],  # the tier reports its own name; ours are "<tier>-..."
        deployment=step.deployment.name,
        provider=step.deployment.provider_name,
        requested_model=step.deployment.model,
        served_model=step.deployment.model,
        outcome=outcome,  # type: ignore[arg-type]
        started_at=datetime.now(UTC),
        **fields,
    )


def answered(step: Call, value: Any = None, **fields: Any) -> Answered:
    value = Invoice(total=12.5) if value is None else value
    return Answered(value, (attempt(step, raw_output='{"total": 12.5}', **fields),))


def provider_failure(
    step: Call, trigger: str = "rate_limit", retry_after: float | None = None, **fields: Any
) -> Failed:
    fields.setdefault("cost_usd", Decimal(0))
    reason = f"HTTP 429 {trigger}"
    error = RuntimeError(reason)
    made = attempt(
        step, "provider_error", trigger=trigger, reason=reason, status_code=429, **fields
    )
    return Failed("provider", trigger, reason, error, (made,), retry_after)


def invalid(step: Call) -> Failed:
    try:
        Invoice.model_validate({"total": "a lot"})
    except ValidationError as error:
        reason = str(error)
        made = attempt(step, "rejected", trigger="validation", reason=reason, raw_output="{}")
        return Failed("quality", "validation", reason, error, (made,))
    raise AssertionError("unreachable")


def errored(step: Call, error: BaseException) -> Failed:
    made = attempt(step, "error", reason=str(error))
    return Failed("error", "error", str(error), error, (made,))


# --- the test plays the face ----------------------------------------------------------------


class Face:
    """Holds the walk and the step it is waiting on."""

    def __init__(self, the_plan: Plan, call: CallInfo | None = None) -> None:
        self.steps = walk(the_plan, MESSAGES, call)
        self.step: Any = next(self.steps)
        self.seen: list[Any] = [self.step]

    def reply(self, outcome: Any | Callable[[Any], Any]) -> Any:
        """Send ``outcome`` (or ``outcome(step)``) back; the next step."""
        value = outcome(self.step) if callable(outcome) else outcome
        self.step = self.steps.send(value)
        self.seen.append(self.step)
        return self.step

    def finish(self, outcome: Any | Callable[[Any], Any]) -> tuple[Any, Receipt]:
        """Send the last outcome back; the walk must end with (value, receipt)."""
        value = outcome(self.step) if callable(outcome) else outcome
        with pytest.raises(StopIteration) as done:
            self.steps.send(value)
        result: tuple[Any, Receipt] = done.value.value
        return result


def names(step: Any) -> str:
    assert isinstance(step, Call), step
    return step.deployment.name


# --- answers, retries, moves ----------------------------------------------------------------


def test_an_answer_ends_the_walk() -> None:
    face = Face(plan(tier("cheap"), tier("strong")))
    assert isinstance(face.step, Call) and face.step.messages == MESSAGES
    assert face.step.response_model is Invoice

    value, receipt = face.finish(answered)

    assert value == Invoice(total=12.5)
    assert receipt.outcome == "answered" and receipt.answered_by == "cheap"
    assert [a.purpose for a in receipt.attempts] == ["answer"]
    assert receipt.moves == () and receipt.route == Route(start_tier="cheap")
    assert receipt.function == "tests.test_engine.extract"


def test_a_provider_failure_sleeps_with_backoff_then_retries_the_same_deployment() -> None:
    face = Face(plan(tier("cheap"), tier("strong")))
    first = face.step

    assert face.reply(provider_failure) == Sleep(0.5)  # initial, no jitter
    assert face.reply(None).deployment is first.deployment
    assert face.reply(provider_failure) == Sleep(1.0)  # exponential
    assert face.reply(None).deployment is first.deployment
    value, receipt = face.finish(answered)

    assert value == Invoice(total=12.5) and receipt.answered_by == "cheap"
    assert [a.purpose for a in receipt.attempts] == ["answer", "retry", "retry"]
    assert [a.outcome for a in receipt.attempts] == ["provider_error"] * 2 + ["answered"]
    assert receipt.moves == ()


def test_a_retry_after_is_honoured_as_the_sleep() -> None:
    face = Face(plan(tier("cheap")))

    assert face.reply(lambda step: provider_failure(step, retry_after=2.5)) == Sleep(2.5)
    assert isinstance(face.reply(None), Call)
    _, receipt = face.finish(answered)
    assert receipt.attempts[0].reason == "HTTP 429 rate_limit"  # nothing added when honoured


def test_a_retry_after_above_the_maximum_leaves_the_deployment_at_once() -> None:
    face = Face(plan(tier("cheap", "cheap-a", "cheap-b"), retry=Retry(max_retry_after=5)))

    step = face.reply(lambda step: provider_failure(step, retry_after=60))

    assert names(step) == "cheap-b"  # no Sleep: straight to the next deployment
    _, receipt = face.finish(answered)
    assert receipt.attempts[0].reason == (
        "HTTP 429 rate_limit; Retry-After 60s is above max_retry_after=5s, so the "
        "deployment was left at once"
    )
    (move,) = receipt.moves
    assert (move.kind, move.from_deployment, move.to_deployment) == (
        "sideways",
        "cheap-a",
        "cheap-b",
    )
    assert [a.purpose for a in receipt.attempts] == ["answer", "retry"]


def test_retries_exhausted_move_sideways_then_up() -> None:
    two = Retry(attempts=2, initial=0.1, jitter=0)
    face = Face(plan(tier("cheap", "cheap-a", "cheap-b"), tier("strong"), retry=two))

    assert names(face.step) == "cheap-a"
    assert isinstance(face.reply(provider_failure), Sleep)
    assert names(face.reply(None)) == "cheap-a"
    assert names(face.reply(provider_failure)) == "cheap-b"  # sideways
    assert isinstance(face.reply(provider_failure), Sleep)
    assert names(face.reply(None)) == "cheap-b"
    assert names(face.reply(lambda s: provider_failure(s, "overloaded"))) == "strong-1"  # up
    value, receipt = face.finish(answered)

    assert receipt.answered_by == "strong" and value == Invoice(total=12.5)
    sideways, up = receipt.moves
    assert (sideways.kind, sideways.from_tier, sideways.to_tier) == ("sideways", "cheap", "cheap")
    assert (sideways.from_deployment, sideways.to_deployment) == ("cheap-a", "cheap-b")
    assert sideways.trigger == "rate_limit"
    assert (up.kind, up.from_tier, up.from_deployment, up.to_tier, up.to_deployment) == (
        "up",
        "cheap",
        "cheap-b",
        "strong",
        "strong-1",
    )
    assert up.trigger == "overloaded" and receipt.escalated
    assert [(a.deployment, a.purpose) for a in receipt.attempts] == [
        ("cheap-a", "answer"),
        ("cheap-a", "retry"),
        ("cheap-b", "retry"),
        ("cheap-b", "retry"),
        ("strong-1", "answer"),
    ]


def test_provider_exhausted_raises_by_policy_with_no_move() -> None:
    once = Retry(attempts=1)
    face = Face(plan(tier("cheap"), tier("strong"), retry=once, on_provider_exhausted="raise"))
    failure = provider_failure(face.step, "server_error")

    with pytest.raises(ProviderExhausted, match="on_provider_exhausted='raise'") as raised:
        face.reply(failure)

    assert raised.value.__cause__ is failure.error
    receipt = raised.value.receipt
    assert receipt.outcome == "failed" and receipt.moves == ()
    assert receipt_of(raised.value) is receipt
    assert [a.outcome for a in receipt.attempts] == ["provider_error"]


def test_a_timeout_on_a_tier_set_to_escalate_moves_up_at_once_as_slow() -> None:
    face = Face(plan(tier("cheap", on_timeout="escalate"), tier("strong")))

    assert names(face.reply(lambda s: provider_failure(s, "timeout"))) == "strong-1"
    _, receipt = face.finish(answered)

    assert (receipt.attempts[0].outcome, receipt.attempts[0].trigger) == ("rejected", "slow")
    assert receipt.moves[0].trigger == "slow" and receipt.moves[0].kind == "up"


def test_a_quality_failure_moves_up() -> None:
    face = Face(plan(tier("cheap"), tier("strong")))

    step = face.reply(invalid)

    assert names(step) == "strong-1" and step.messages == MESSAGES  # no carry_failure
    _, receipt = face.finish(answered)
    (move,) = receipt.moves
    assert (move.kind, move.trigger, move.from_tier, move.to_tier) == (
        "up",
        "validation",
        "cheap",
        "strong",
    )
    assert "total" in move.reason
    assert [a.outcome for a in receipt.attempts] == ["rejected", "answered"]


def test_carry_failure_gives_the_next_tier_the_rejected_answer_and_why() -> None:
    face = Face(plan(tier("cheap"), tier("strong"), carry_failure=True))

    step = face.reply(invalid)

    assert step.messages[: len(MESSAGES)] == MESSAGES
    assistant, user = step.messages[len(MESSAGES) :]
    assert assistant == {"role": "assistant", "content": "{}"}
    assert "rejected (validation)" in user["content"]


def test_when_every_tier_fails_the_error_holds_the_receipt_and_no_move_past_the_last() -> None:
    face = Face(plan(tier("cheap"), tier("strong")))
    face.reply(invalid)

    with pytest.raises(AllTiersFailed) as raised:
        face.reply(invalid)

    receipt = raised.value.receipt
    assert receipt.outcome == "failed" and receipt.answered_by is None
    assert [m.to_tier for m in receipt.moves] == ["strong"]  # nowhere to go after strong
    assert isinstance(raised.value.__cause__, ValidationError)
    assert "cheap [cheap-1] rejected (validation)" in str(raised.value)


class Flaky(Exception):
    pass


def test_on_turns_a_matched_error_into_a_quality_failure() -> None:
    face = Face(plan(tier("cheap"), tier("strong"), on=as_trigger((ValidationError, Flaky))))

    step = face.reply(lambda s: errored(s, Flaky("the parser tripped")))

    assert names(step) == "strong-1"
    _, receipt = face.finish(answered)
    first = receipt.attempts[0]
    assert (first.outcome, first.trigger) == ("rejected", "on")
    assert receipt.moves[0].trigger == "on" and receipt.moves[0].reason == "the parser tripped"


def test_an_unmatched_error_passes_through_as_the_same_object_with_its_receipt() -> None:
    face = Face(plan(tier("cheap"), tier("strong")))
    error = Flaky("401 bad key")

    with pytest.raises(Flaky) as raised:
        face.reply(lambda s: errored(s, error))

    assert raised.value is error and str(raised.value) == "401 bad key"
    receipt = receipt_of(error)
    assert receipt.outcome == "error" and receipt.moves == ()
    assert [a.outcome for a in receipt.attempts] == ["error"]


# --- gates ----------------------------------------------------------------------------------


def non_empty(answer: Invoice, context: Any) -> float:
    return 1.0


def test_a_gate_is_a_check_step_and_its_rejection_moves_up() -> None:
    face = Face(plan(tier("cheap"), tier("strong"), gates=(non_empty,)))

    check = face.reply(answered)

    assert isinstance(check, Check) and check.gates == (non_empty,)
    assert check.answer == Invoice(total=12.5)
    assert (check.context.tier, check.context.deployment) == ("cheap", "cheap-1")
    assert not check.context.is_last_tier and check.context.messages == MESSAGES
    step = face.reply(Verdict({"non_empty": 0.2}, "non_empty", Rejected("too small", score=0.2)))
    assert names(step) == "strong-1"
    assert isinstance(face.reply(answered), Check)
    _, receipt = face.finish(Verdict({"non_empty": 0.9}))

    rejected, accepted = receipt.attempts
    assert (rejected.outcome, rejected.trigger, rejected.gate) == ("rejected", "gate", "non_empty")
    assert rejected.reason == "non_empty: too small" and rejected.scores == {"non_empty": 0.2}
    assert accepted.outcome == "answered" and accepted.scores == {"non_empty": 0.9}
    (move,) = receipt.moves
    assert (move.trigger, move.gate, move.reason) == ("gate", "non_empty", "non_empty: too small")


def test_gate_reasks_stay_on_the_tier_numbered_1_to_n() -> None:
    reject = Verdict({}, "non_empty", Rejected("say more"))
    face = Face(plan(tier("cheap", gate_reasks=2), tier("strong"), gates=(non_empty,)))

    face.reply(answered)
    again = face.reply(reject)
    assert names(again) == "cheap-1"
    assert "non_empty: say more" in again.messages[-1]["content"]
    face.reply(answered)
    assert names(face.reply(reject)) == "cheap-1"
    face.reply(answered)
    assert names(face.reply(reject)) == "strong-1"  # re-asks spent: up
    face.reply(answered)
    _, receipt = face.finish(Verdict({}))

    cheap = [a for a in receipt.attempts if a.tier == "cheap"]
    assert [(a.purpose, a.reask) for a in cheap] == [("answer", 0), ("reask", 1), ("reask", 2)]
    assert all(a.outcome == "rejected" and a.gate == "non_empty" for a in cheap)
    assert [m.kind for m in receipt.moves] == ["up"]


def test_best_effort_returns_the_strongest_rejected_answer() -> None:
    reject = Verdict({}, "non_empty", Rejected("not sure"))
    face = Face(plan(tier("cheap"), tier("strong"), gates=(non_empty,), when_unmet="best_effort"))
    face.reply(answered)
    face.reply(reject)
    face.reply(lambda s: answered(s, Invoice(total=99.0)))

    value, receipt = face.finish(reject)

    assert value == Invoice(total=99.0)
    assert receipt.outcome == "best_effort" and receipt.answered_by == "strong"
    assert receipt.notes == ("best effort: the answer of 'strong' failed its gates",)


class Vote:
    """A sampling gate: three answers, the majority returned."""

    samples = 3

    def __call__(self, answer: Invoice, context: Any) -> float:
        return len(context.samples) / self.samples

    def choose(self, samples: Any) -> Any:
        return max(samples, key=list(samples).count)


class Confidence(BaseModel):
    confidence: float


class AskConfidence:
    """A follow-up gate: one more question to the same tier."""

    def __call__(self, answer: Invoice, context: Any) -> float:
        return float(context.follow_up.confidence)

    def follow_up(self, answer: Any, messages: Any) -> tuple[Any, type[BaseModel]]:
        return [*messages, {"role": "user", "content": "How sure?"}], Confidence


def test_a_sampling_gate_is_a_sample_step_and_the_majority_is_returned() -> None:
    vote = Vote()
    face = Face(plan(tier("cheap"), tier("strong"), gates=(vote,)))

    sample = face.reply(lambda s: answered(s, Invoice(total=1.0)))

    assert isinstance(sample, Sample) and sample.count == 2
    assert sample.call.deployment.name == "cheap-1" and sample.call.messages == MESSAGES
    two = [answered(sample.call, Invoice(total=2.0)), answered(sample.call, Invoice(total=2.0))]
    check = face.reply(two)
    assert isinstance(check, Check) and check.answer == Invoice(total=2.0)
    assert len(check.context.samples) == 3
    value, receipt = face.finish(Verdict({"Vote": 1.0}))

    assert value == Invoice(total=2.0)
    assert [a.purpose for a in receipt.attempts] == ["answer", "sample", "sample"]
    assert receipt.spent_attempts == 2


def test_a_follow_up_gate_asks_the_same_tier_and_the_reply_is_an_attempt() -> None:
    face = Face(plan(tier("cheap"), tier("strong"), gates=(AskConfidence(),)))

    follow = face.reply(answered)

    assert isinstance(follow, Call) and follow.response_model is Confidence
    assert follow.deployment.name == "cheap-1" and follow.messages[-1]["content"] == "How sure?"
    check = face.reply(lambda s: answered(s, Confidence(confidence=0.8)))
    assert isinstance(check, Check) and check.context.follow_up == Confidence(confidence=0.8)
    _, receipt = face.finish(Verdict({"AskConfidence": 0.8}))

    assert [a.purpose for a in receipt.attempts] == ["answer", "follow_up"]
    assert receipt.attempts[0].scores == {"AskConfidence": 0.8}


# --- budget ---------------------------------------------------------------------------------


def test_the_budget_stops_before_a_tier_it_would_pass() -> None:
    pricey = FakeTier("strong", (Deployment("strong-1", usd_per_token=Decimal("0.0001")),))
    face = Face(plan(tier("cheap"), pricey, budget_usd=Decimal("0.005")))

    with pytest.raises(BudgetExceeded) as raised:
        face.reply(invalid)  # 0.001 spent + 120 tokens x 0.0001 projected > 0.005

    receipt = raised.value.receipt
    assert receipt.tiers_tried == ("cheap",) and receipt.outcome == "failed"
    assert receipt.notes[-1].startswith("budget: stopped before tier 'strong': spent $0.001000")
    assert str(raised.value).startswith(receipt.notes[-1])


def test_a_budget_stop_records_no_move_and_no_escalation() -> None:
    """The task never reached the tier the budget stopped it before: no move up on the
    receipt, no Escalated event, ``escalated`` false."""
    heard: list[Any] = []
    pricey = FakeTier("strong", (Deployment("strong-1", usd_per_token=Decimal("0.0001")),))
    the_plan = plan(tier("cheap"), pricey, budget_usd=Decimal("0.005"))
    face = Face(the_plan, CallInfo(on_event=heard.append))

    with pytest.raises(BudgetExceeded) as raised:
        face.reply(invalid)

    receipt = raised.value.receipt
    assert receipt.moves == () and not receipt.escalated
    assert not [e for e in heard if isinstance(e, Escalated)]


def test_a_budget_per_call_replaces_the_plans() -> None:
    pricey = FakeTier("strong", (Deployment("strong-1", usd_per_token=Decimal("0.0001")),))
    face = Face(plan(tier("cheap"), pricey, budget_usd=Decimal("0.005")),
                CallInfo(budget_usd=Decimal("1")))  # fmt: skip

    assert names(face.reply(invalid)) == "strong-1"


# --- self-escalation ------------------------------------------------------------------------


def asks(step: Call) -> Answered:
    request = SelfEscalationRequest(reason="beyond me", question="What is 12.5 in words?")
    return Answered(step.response_model(escalate=request), (attempt(step),))


def test_self_escalation_moves_up_and_the_loop_guard_stops_offering_it() -> None:
    option = SelfEscalation(max_per_call=1)
    face = Face(plan(tier("cheap"), tier("mid"), tier("strong"), self_escalation=option))
    assert face.step.messages[0] == {"role": "system", "content": option.policy}
    assert face.step.response_model is choice_model(Invoice, "Invoice")

    mid = face.reply(asks)

    assert names(mid) == "mid-1"
    assert mid.messages == MESSAGES and mid.response_model is Invoice  # the guard is spent
    value, receipt = face.finish(answered)
    assert value == Invoice(total=12.5) and receipt.answered_by == "mid"
    first = receipt.attempts[0]
    assert (first.outcome, first.trigger) == ("rejected", "self_escalation")
    assert first.reason == "the model asked to escalate: beyond me"
    (move,) = receipt.moves
    assert move.trigger == "self_escalation" and move.question == "What is 12.5 in words?"
    assert receipt.self_escalations == 1


def test_a_tier_that_answers_with_the_option_gives_the_plain_value() -> None:
    face = Face(plan(tier("cheap"), tier("strong"), self_escalation=SelfEscalation()))

    choice = face.step.response_model(answer=Invoice(total=3.0))
    value, receipt = face.finish(Answered(choice, (attempt(face.step),)))

    assert value == Invoice(total=3.0) and receipt.self_escalations == 0


def test_the_strongest_tier_is_never_offered_self_escalation() -> None:
    face = Face(plan(tier("cheap"), tier("strong"), self_escalation=SelfEscalation()))

    strong = face.reply(asks)

    assert strong.response_model is Invoice and strong.messages == MESSAGES


# --- what stops a step ----------------------------------------------------------------------


@pytest.mark.parametrize("stop", [asyncio.CancelledError, KeyboardInterrupt])
def test_a_cancellation_in_flight_is_on_the_receipt_and_re_raised(
    stop: type[BaseException],
) -> None:
    heard: list[Any] = []
    face = Face(plan(tier("cheap"), tier("strong")), CallInfo(on_event=heard.append))
    face.reply(invalid)  # now the strong tier's request is in flight
    error = stop()

    with pytest.raises(stop) as raised:
        face.steps.throw(error)

    assert raised.value is error
    receipt = receipt_of(error)
    assert receipt.outcome == "cancelled"
    last = receipt.attempts[-1]
    assert (last.tier, last.deployment, last.outcome, last.trigger) == (
        "strong",
        "strong-1",
        "cancelled",
        "cancelled",
    )
    assert last.cost_usd is None and receipt.cost_usd is None
    assert receipt.known_cost_usd == Decimal("0.001")
    assert isinstance(heard[-1], Finished) and heard[-1].error is error


def test_a_cancellation_during_a_sleep_adds_no_attempt() -> None:
    face = Face(plan(tier("cheap")))
    face.reply(provider_failure)
    error = asyncio.CancelledError()

    with pytest.raises(asyncio.CancelledError):
        face.steps.throw(error)

    receipt = receipt_of(error)
    assert receipt.outcome == "cancelled" and len(receipt.attempts) == 1
    assert receipt.notes == ("cancelled: CancelledError",)


def test_a_gates_bug_thrown_in_is_an_error_outcome() -> None:
    face = Face(plan(tier("cheap"), tier("strong"), gates=(non_empty,)))
    assert isinstance(face.reply(answered), Check)
    bug = TypeError("gate crashed")

    with pytest.raises(TypeError) as raised:
        face.steps.throw(bug)

    assert raised.value is bug
    receipt = receipt_of(bug)
    assert receipt.outcome == "error"
    assert [a.outcome for a in receipt.attempts] == ["answered"]  # no request was in flight


# --- events ---------------------------------------------------------------------------------


def test_events_reach_the_listener_in_order() -> None:
    heard: list[Any] = []
    once = Retry(attempts=1)
    the_plan = plan(tier("cheap", "cheap-a", "cheap-b"), tier("strong"), retry=once)
    face = Face(the_plan, CallInfo(on_event=heard.append, task="invoices", tags={"team": "ap"}))
    face.reply(provider_failure)
    face.reply(invalid)
    value, receipt = face.finish(answered)

    assert [type(e) for e in heard] == [
        TierStarted,
        AttemptFinished,
        MovedSideways,
        TierStarted,
        AttemptFinished,
        Escalated,
        TierStarted,
        AttemptFinished,
        Finished,
    ]
    assert [(e.tier, e.deployment) for e in heard if isinstance(e, TierStarted)] == [
        ("cheap", "cheap-a"),
        ("cheap", "cheap-b"),
        ("strong", "strong-1"),
    ]
    assert [e.attempt for e in heard if isinstance(e, AttemptFinished)] == list(receipt.attempts)
    sideways = heard[2]
    assert (sideways.from_deployment, sideways.to_deployment, sideways.trigger) == (
        "cheap-a",
        "cheap-b",
        "rate_limit",
    )
    up = heard[5]
    assert (up.from_tier, up.to_tier, up.trigger) == ("cheap", "strong", "validation")
    assert heard[-1].receipt == receipt and heard[-1].result is value
    assert all(e.function == "tests.test_engine.extract" for e in heard)
    assert (receipt.task, receipt.tags) == ("invoices", {"team": "ap"})


def test_the_call_may_start_higher_and_the_route_says_why() -> None:
    route = Route(start_tier="strong", source="options", reason="regenerate")
    face = Face(plan(tier("cheap"), tier("strong")), CallInfo(start=1, route=route))

    assert names(face.step) == "strong-1"
    _, receipt = face.finish(answered)
    assert receipt.route == route and receipt.tiers_tried == ("strong",)


def test_context_reaches_the_call_step() -> None:
    context: Mapping[str, Any] = {"currency": "EUR"}
    face = Face(plan(tier("cheap"), context={"currency": "USD"}), CallInfo(context=context))
    assert face.step.context == context
    assert Face(plan(tier("cheap"), context={"currency": "USD"})).step.context == {
        "currency": "USD"
    }
