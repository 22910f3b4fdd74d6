"""How the engine uses gates, routes and budgets, through the real SDKs over HTTP,
sync and async: user-written gates, scores, per-tier gates, gate re-asks, best effort,
budgets, routing and slow tiers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from escalate import (
    AllTiersFailed,
    BudgetExceeded,
    ConfigurationError,
    Route,
    SamplingCostWarning,
    Tier,
    escalating,
    options,
    receipt_of,
)
from escalate.gates import GateContext, Rejected
from escalate.testing import (
    FunctionTier,
    ScriptedTier,
    assert_answered_by,
    assert_escalated,
    assert_not_escalated,
    assert_tiers,
    override,
)
from escalate.testing._server import ProviderServer, Reply

from .conftest import KEY


class Answer(BaseModel):
    body: str
    confidence: float = 1.0


def long_enough(answer: Answer, context: GateContext) -> float:
    if len(answer.body) < 20:
        raise Rejected(f"body has {len(answer.body)} characters, wants 20")
    return len(answer.body) / 100


async def confident(answer: Answer, context: GateContext) -> float:
    if answer.confidence < 0.5:
        raise Rejected("the model is not sure", score=answer.confidence)
    return answer.confidence


@pytest.fixture
def tiers(openai_tier: Any, anthropic_tier: Any) -> list[Tier]:
    return [openai_tier("gpt-4o-mini"), anthropic_tier("claude-sonnet-4-5")]


SHORT = {"body": "too short"}
LONG = {"body": "a body that is long enough to pass", "confidence": 0.9}


def test_a_user_gate_rejects_with_its_reason_verbatim(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script("gpt-4o-mini", Reply(data=SHORT))
    server.script("claude-sonnet-4-5", Reply(data=LONG))
    ask = build(tiers=tiers, response_model=Answer, gates=[long_enough])

    receipt = receipt_of(ask("q"))

    rejected, answered = receipt.attempts
    assert (rejected.outcome, rejected.trigger) == ("rejected", "gate")
    assert rejected.reason == "long_enough: body has 9 characters, wants 20"
    assert receipt.escalations[0].reason == rejected.reason
    assert answered.scores == {"long_enough": pytest.approx(0.34)}
    assert answered.outcome == "answered"


def test_async_gates_run_on_async_functions(
    server: ProviderServer, tiers: list[Tier], face: str, build: Any
) -> None:
    server.script("gpt-4o-mini", Reply(data={"body": "x" * 30, "confidence": 0.2}))
    server.script("claude-sonnet-4-5", Reply(data=LONG))
    if face == "sync":
        with pytest.raises(ConfigurationError, match="gate confident is async"):
            build(tiers=tiers, response_model=Answer, gates=[long_enough, confident])
        return
    ask = build(tiers=tiers, response_model=Answer, gates=[long_enough, confident])

    receipt = receipt_of(ask("q"))

    first = receipt.attempts[0]
    assert first.reason == "confident: the model is not sure"
    # Scores of gates that ran are kept, the rejecting gate's own included.
    assert first.scores == {"long_enough": pytest.approx(0.3), "confident": pytest.approx(0.2)}
    assert receipt.attempts[1].scores == {"long_enough": 0.34, "confident": 0.9}


def test_per_tier_gates_run_only_on_their_tier(
    build: Any, server: ProviderServer, openai_tier: Any, anthropic_tier: Any
) -> None:
    cheap = openai_tier("gpt-4o-mini", gates=[long_enough])
    strong = anthropic_tier("claude-sonnet-4-5")
    server.script("gpt-4o-mini", Reply(data=SHORT))
    server.script("claude-sonnet-4-5", Reply(data=SHORT))

    answer = build(tiers=[cheap, strong], response_model=Answer)("q")

    assert answer.body == "too short"  # the strong tier has no length gate
    assert_escalated(
        answer, trigger="gate", reason_contains="wants 20", to_tier=strong.display_name
    )
    assert_answered_by(answer, strong.display_name)


def test_a_gate_rejection_is_reasked_on_the_same_tier_with_its_reason(
    build: Any, server: ProviderServer, openai_tier: Any, anthropic_tier: Any
) -> None:
    cheap = openai_tier("gpt-4o-mini", gate_reasks=1)
    server.script("gpt-4o-mini", Reply(data=SHORT), Reply(data=LONG))
    ask = build(tiers=[cheap, anthropic_tier()], response_model=Answer, gates=[long_enough])

    receipt = receipt_of(ask("q"))

    assert [a.outcome for a in receipt.attempts] == ["rejected", "answered"]
    assert_tiers(receipt, [cheap.display_name])
    assert_not_escalated(receipt)
    second = server.requests_for("gpt-4o-mini")[1].body["messages"]
    assert "body has 9 characters, wants 20" in second[-1]["content"]
    assert second[-2]["role"] == "assistant" and "too short" in second[-2]["content"]


def test_the_strongest_tier_is_gated_too_and_best_effort_returns_its_answer(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script("gpt-4o-mini", Reply(data=SHORT))
    server.script("claude-sonnet-4-5", Reply(data={"body": "still short"}))
    with pytest.raises(AllTiersFailed) as raised:
        build(tiers=tiers, response_model=Answer, gates=[long_enough])("q")
    assert [a.trigger for a in raised.value.receipt.attempts] == ["gate", "gate"]
    assert isinstance(raised.value.__cause__, Rejected)

    server.script("gpt-4o-mini", Reply(data=SHORT))
    server.script("claude-sonnet-4-5", Reply(data={"body": "still short"}))
    answer = build(
        tiers=tiers, response_model=Answer, gates=[long_enough], when_unmet="best_effort"
    )("q")
    receipt = receipt_of(answer)
    assert answer.body == "still short" and receipt.outcome == "best_effort"
    assert receipt.answered_by == tiers[1].display_name
    assert "failed its gates" in receipt.notes[-1]


def test_a_budget_stops_before_an_escalation_that_would_pass_it(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    # 1000 in / 100 out on gpt-4o-mini costs $0.00021; the same on sonnet would add $0.0045.
    server.script("gpt-4o-mini", Reply(data=SHORT, input_tokens=1000, output_tokens=100))
    ask = build(tiers=tiers, response_model=Answer, gates=[long_enough], budget_usd="0.001")
    with pytest.raises(BudgetExceeded) as raised:
        ask("q")
    receipt = raised.value.receipt
    assert len(receipt.attempts) == 1 and server.requests_for("claude-sonnet-4-5") == []
    assert "projected $0.004500" in receipt.notes[-1] and "$0.001" in str(raised.value)

    # options() replaces the decorator's budget for the calls in its block.
    server.script("gpt-4o-mini", Reply(data=SHORT, input_tokens=1000, output_tokens=100))
    server.script("claude-sonnet-4-5", Reply(data=LONG))
    with options(budget_usd=Decimal("0.01")):
        assert receipt_of(ask("q")).answered_by == tiers[1].display_name


def test_options_and_route_choose_the_starting_tier(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    def by_plan(question: str, plan: str = "free") -> Any:
        return (tiers[1].display_name, f"{plan} plan") if plan == "pro" else None

    def prompt(question: str, plan: str = "free") -> str:
        return question

    ask = build(prompt, tiers=tiers, response_model=Answer, route=by_plan)
    server.script("claude-sonnet-4-5", Reply(data=LONG), Reply(data=LONG))
    server.script("gpt-4o-mini", Reply(data=LONG))

    receipt = receipt_of(ask("q", plan="pro"))
    assert receipt.tiers_tried == (tiers[1].display_name,)
    assert receipt.route == Route(
        start_tier=tiers[1].display_name, source="route", reason="pro plan"
    )
    assert receipt_of(ask("q")).route == Route(start_tier=tiers[0].display_name)

    with options(start_at=-1, reason="regenerate"):
        receipt = receipt_of(ask("q"))
    assert receipt.tiers_tried == (tiers[1].display_name,)
    assert (receipt.route.source, receipt.route.reason) == ("options", "regenerate")

    with options(start_at="nope"), pytest.raises(ConfigurationError, match="not one of"):
        ask("q")


def test_a_slow_tier_escalates_at_once_when_told_to(
    build: Any, server: ProviderServer, openai_tier: Any, anthropic_tier: Any
) -> None:
    cheap = openai_tier("gpt-4o-mini", timeout=0.2, on_timeout="escalate")
    server.script("gpt-4o-mini", Reply(data=LONG, delay=1.0))
    server.script("claude-sonnet-4-5", Reply(data=LONG))

    receipt = receipt_of(build(tiers=[cheap, anthropic_tier()], response_model=Answer)("q"))

    assert len(server.requests_for("gpt-4o-mini")) == 1  # not retried
    assert receipt.escalations[0].trigger == "slow"
    assert receipt.attempts[0].reason == "too slow: the request timed out"


def test_a_gate_that_returns_a_bool_is_told_how_to_reject(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script("gpt-4o-mini", Reply(data=LONG))
    ask = build(tiers=tiers, response_model=Answer, gates=[lambda answer, context: False])
    with pytest.raises(TypeError, match=r"raising escalate\.gates\.Rejected"):
        ask("q")


def test_the_gate_context_carries_the_call() -> None:
    seen: list[GateContext] = []

    def spy(answer: Answer, context: GateContext) -> None:
        seen.append(context)

    with ProviderServer() as server:
        tier = Tier("openai/gpt-4o-mini", base_url=server.openai_base_url, api_key=KEY)
        server.script("gpt-4o-mini", Reply(data=LONG))

        @escalating(tiers=[tier], response_model=Answer, gates=[spy])
        def ask(question: str, *, lang: str) -> str:
            return question

        ask("what?", lang="fr")

    (context,) = seen
    assert context.args == ("what?",) and context.kwargs == {"lang": "fr"}
    assert context.tier == "openai/gpt-4o-mini" and context.is_last_tier
    assert context.completion.choices[0].message.tool_calls  # the raw SDK completion
    assert context.attempt is not None and context.attempt.served_model == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gates": [3]}, r"gates\[0\] is not callable"),
        ({"gates": long_enough}, "must be a list of gates"),
        ({"when_unmet": "ignore"}, "when_unmet"),
        ({"budget_usd": -1}, "budget_usd must be > 0"),
        ({"budget_usd": "lots"}, "budget_usd"),
        ({"route": "strong"}, "route must be a function"),
        ({"tiers": [Tier("openai/gpt-4o", gate_reasks=-1)]}, "gate_reasks"),
        ({"tiers": [Tier("openai/gpt-4o", on_timeout="wait")]}, "on_timeout"),  # type: ignore[arg-type]
    ],
)
def test_gate_configuration_mistakes(kwargs: dict[str, Any], message: str) -> None:
    settings: dict[str, Any] = {"tiers": ["openai/gpt-4o-mini"], "response_model": Answer}
    settings.update(kwargs)
    with pytest.raises(ConfigurationError, match=message):
        escalating(**settings)


# --- consistency: n samples, the majority returned ---------------------------------------------


class Pick(BaseModel):
    label: str
    why: str = ""


def test_consistency_returns_the_majority_and_counts_every_sample(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    from escalate.gates import consistency

    server.script(
        "gpt-4o-mini",
        Reply(data={"label": "spam", "why": "a"}),
        Reply(data={"label": "ham", "why": "b"}),
        Reply(data={"label": "Ham ", "why": "c"}),
        Reply(data={"label": "ham", "why": "d"}),
    )
    with pytest.warns(SamplingCostWarning, match="the strongest"):  # on purpose here
        ask = build(
            tiers=tiers,
            response_model=Pick,
            gates=[consistency(4, field="label", one_request=False)],
        )

    pick = ask("classify: hello")

    assert pick.label == "ham" and pick.why == "b"  # the earliest of the majority
    receipt = receipt_of(pick)
    assert len(receipt.attempts) == 4 and not receipt.escalated
    assert all(a.cost_usd and a.cost_usd > 0 for a in receipt.attempts)  # samples cost money
    assert receipt.attempts[0].scores == {"consistency": 0.75}
    assert [a.purpose for a in receipt.attempts] == ["answer", "sample", "sample", "sample"]
    assert [a.trigger for a in receipt.attempts] == [None, None, None, None]


def test_consistency_escalates_when_samples_disagree(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    from escalate.gates import consistency

    server.script("gpt-4o-mini", *(Reply(data={"label": x}) for x in ("a", "b", "c")))
    server.script("claude-sonnet-4-5", *(Reply(data={"label": "b"}) for _ in range(3)))
    with pytest.warns(SamplingCostWarning, match="the strongest"):  # on purpose here
        ask = build(
            tiers=tiers,
            response_model=Pick,
            gates=[consistency(3, field="label", one_request=False)],
        )

    receipt = receipt_of(ask("q"))

    cheap = [a for a in receipt.attempts if a.tier == tiers[0].display_name]
    assert [(a.purpose, a.trigger) for a in cheap] == [
        ("answer", "gate"),
        ("sample", None),
        ("sample", None),
    ]
    assert cheap[0].gate == "consistency"
    assert cheap[0].reason == "consistency: 1 of 3 samples agree on 'label' (0.33 < 0.60)"
    assert receipt.answered_by == tiers[1].display_name


def test_gates_that_cannot_fit_are_refused_at_decoration() -> None:
    from escalate.gates import min_length

    with pytest.raises(ConfigurationError, match="summry"):
        escalating(
            tiers=["openai/gpt-4o-mini"], response_model=Answer, gates=[min_length("summry", 3)]
        )
    twice = [min_length("body", 3), min_length("body", 9)]
    with pytest.raises(ConfigurationError, match=r"two gates named 'min_length\(body\)'"):
        escalating(tiers=["openai/gpt-4o-mini"], response_model=Answer, gates=twice)
    per_tier = Tier("openai/gpt-4o-mini", gates=[min_length("body", 9)])
    with pytest.raises(ConfigurationError, match="two gates named"):
        escalating(tiers=[per_tier], response_model=Answer, gates=[min_length("body", 3)])


# --- the same engine decisions with the testing kit's fake tiers (no HTTP) ---------------------


def test_the_loop_guard_and_routing_with_fake_tiers(face: str) -> None:
    """The engine's choices do not depend on HTTP: fake tiers from escalate.testing swap
    in through override(), the call site untouched."""
    import asyncio

    escalate_please = {"escalate": {"reason": "too hard", "question": "q?"}}

    def prompt(question: str) -> str:
        return question

    async def async_prompt(question: str) -> str:
        return question

    from escalate import SelfEscalation

    option = SelfEscalation(max_per_call=1)
    decorate = escalating(tiers=["openai/a", "openai/b", "openai/c"], response_model=Answer,
                          self_escalation=option)  # fmt: skip
    ask = decorate(prompt if face == "sync" else async_prompt)
    cheap = ScriptedTier("cheap", escalate_please)
    mid = ScriptedTier("mid", {"body": "mid answers"})
    seen: list[list[dict[str, Any]]] = []
    strong = FunctionTier("strong", lambda messages: seen.append(messages) or {"body": "s"})

    with override(ask, tiers=[cheap, mid, strong]):
        answer = ask("q") if face == "sync" else asyncio.run(ask("q"))
        assert answer.body == "mid answers"
        assert_escalated(answer, trigger="self_escalation", from_tier="cheap", to_tier="mid")
        # The guard is spent: mid was not offered the option (no policy prompt), cheap was.
        assert cheap.calls[0][0] == {"role": "system", "content": option.policy}
        assert [m["role"] for m in mid.calls[0]] == ["user"]
        with options(start_at="strong", reason="regenerate"):
            again = ask("q") if face == "sync" else asyncio.run(ask("q"))
        assert_tiers(again, ["strong"])
        assert receipt_of(again).route == Route(
            start_tier="strong", source="options", reason="regenerate"
        )
    assert seen and seen[0][-1]["content"] == "q"


def test_asked_confidence_puts_a_follow_up_question_to_the_tier(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    from escalate.gates import asked_confidence

    server.script("gpt-4o-mini", Reply(data=LONG), Reply(data={"confidence": 0.35}))
    server.script("claude-sonnet-4-5", Reply(data=LONG), Reply(data={"confidence": 0.9}))
    ask = build(tiers=tiers, response_model=Answer, gates=[asked_confidence(0.7)])

    receipt = receipt_of(ask("q"))

    answer, follow, strong_answer, strong_follow = receipt.attempts
    assert (answer.outcome, answer.trigger) == ("rejected", "gate")
    assert answer.reason == "asked_confidence: asked, the model gives its answer 0.35 < 0.70"
    assert answer.scores == {"asked_confidence": 0.35}
    assert answer.gate == "asked_confidence"
    assert follow.purpose == "follow_up" and follow.cost_usd and follow.cost_usd > 0
    assert strong_answer.outcome == "answered" and strong_answer.scores == {"asked_confidence": 0.9}
    assert strong_follow.purpose == "follow_up" and receipt.answered_by == tiers[1].display_name
    question = server.requests_for("gpt-4o-mini")[1].body["messages"]
    assert question[-2]["role"] == "assistant" and "long enough to pass" in question[-2]["content"]
    assert "How confident are you" in question[-1]["content"]
