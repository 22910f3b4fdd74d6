"""The consistency gate's samples through the real SDKs over HTTP, sync and async: n
choices in one request (one attempt, the prompt billed once, each choice validated on its
own), votes on a normalised key, the agreement measures, early stopping, the warning when
the function's gates would sample the strongest tier, and the fake tiers' ``n``."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from pydantic import BaseModel, field_validator

from escalate import SamplingCostWarning, Tier, escalating, receipt_of
from escalate.gates import consistency
from escalate.gates._consistency import vote_key
from escalate.testing import ScriptedTier
from escalate.testing._server import Choice, ProviderServer, Reply

MINI = "gpt-4o-mini"
SONNET = "claude-sonnet-4-5"
STRONG = f"anthropic/{SONNET}"


class Pick(BaseModel):
    label: str
    why: str = ""

    @field_validator("label")
    @classmethod
    def not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("label is blank")
        return value


class Sum(BaseModel):
    total: str


@pytest.fixture
def tiers(openai_tier: Any, anthropic_tier: Any) -> list[Tier]:
    return [
        openai_tier(MINI, gates=[consistency(4, field="label")]),
        anthropic_tier(SONNET),
    ]


def test_n_choices_in_one_request_one_attempt_input_billed_once(
    build: Any, server: ProviderServer, tiers: list[Tier], openai_tier: Any
) -> None:
    server.script(
        MINI,
        Reply(
            choices=[
                Choice(data={"label": "spam", "why": "a"}),
                Choice(data={"label": "ham", "why": "b"}),
                Choice(data={"label": "  "}),  # fails its validator: a failed sample
                Choice(data={"label": "HAM", "why": "d"}),
            ]
        ),
    )
    ask = build(tiers=tiers, response_model=Pick)

    pick = ask("classify: hello")

    assert (pick.label, pick.why) == ("ham", "b")  # the earliest of the majority
    receipt = receipt_of(pick)
    assert len(server.requests) == 1 and server.requests[0].body["n"] == 4
    (attempt,) = receipt.attempts
    assert (attempt.purpose, attempt.outcome, attempt.choices) == ("answer", "answered", 4)
    assert attempt.votes == ("spam", "ham", None, "ham")
    assert attempt.scores == {"consistency": pytest.approx(2 / 3)}  # over those that answered
    # The same prompt asked once, without the gate: the input is the same, billed once.
    server.script(MINI, Reply(data={"label": "ham"}))
    single = build(tiers=[openai_tier(MINI), tiers[1]], response_model=Pick)
    alone = receipt_of(single("classify: hello")).attempts[0]
    assert attempt.input_tokens == alone.input_tokens
    assert attempt.output_tokens is not None and alone.output_tokens is not None
    assert attempt.output_tokens > 3 * alone.output_tokens  # every choice's output counted
    assert attempt.cost_usd is not None and alone.cost_usd is not None
    assert attempt.cost_usd < 4 * alone.cost_usd  # n requests would bill the input 4 times


def test_one_request_whose_choices_disagree_escalates(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    labels = ("a", "b", "a", "c")
    server.script(MINI, Reply(choices=[Choice(data={"label": x}) for x in labels]))
    server.script(SONNET, Reply(data={"label": "b"}))
    ask = build(tiers=tiers, response_model=Pick)

    receipt = receipt_of(ask("q"))

    cheap, strong = receipt.attempts
    assert (cheap.outcome, cheap.trigger, cheap.gate, cheap.choices) == (
        "rejected",
        "gate",
        "consistency",
        4,
    )
    assert cheap.reason == "consistency: 2 of 4 samples agree on 'label' (0.50 < 0.60)"
    assert (strong.tier, strong.choices, receipt.answered_by) == (STRONG, None, STRONG)


def test_a_request_whose_choices_all_fail_validation_is_a_quality_failure(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script(MINI, Reply(choices=[Choice(data={"label": " "}) for _ in range(4)]))
    server.script(SONNET, Reply(data={"label": "b"}))

    receipt = receipt_of(build(tiers=tiers, response_model=Pick)("q"))

    cheap = receipt.attempts[0]
    assert (cheap.outcome, cheap.trigger, cheap.choices) == ("rejected", "validation", 4)
    assert cheap.reason is not None and "none of the 4 choices validated" in cheap.reason
    assert receipt.answered_by == STRONG and len(server.requests) == 2


def test_choices_in_json_mode_are_read_from_the_content(
    build: Any, server: ProviderServer, openai_tier: Any, anthropic_tier: Any
) -> None:
    import instructor

    tier = openai_tier(
        MINI, mode=instructor.Mode.JSON_SCHEMA, gates=[consistency(3, field="label")]
    )
    server.script(MINI, Reply(choices=[Choice(data={"label": x}) for x in ("x", "y", "x")]))
    pick = build(tiers=[tier, anthropic_tier(SONNET)], response_model=Pick)("q")
    assert pick.label == "x"
    assert receipt_of(pick).attempts[0].votes == ("x", "y", "x")


def test_votes_on_a_normalised_key(build: Any, server: ProviderServer, openai_tier: Any) -> None:
    totals = ("$1,200.00", "1200", "1200.5", " 1200.0 ")
    server.script(MINI, Reply(choices=[Choice(data={"total": t}) for t in totals]))
    tier = openai_tier(MINI, gates=[consistency(4, field="total", min_agreement=0.7)])
    answer = build(tiers=[tier, openai_tier("gpt-4o")], response_model=Sum)("q")
    assert answer.total == "$1,200.00"
    attempt = receipt_of(answer).attempts[0]
    assert attempt.votes == ("1200", "1200", "1200.5", "1200")
    assert attempt.scores == {"consistency": 0.75}
    by_word = consistency(2, key=lambda text: text.split()[0])
    assert by_word.key("Paris, France") != by_word.key("paris is the answer")
    assert by_word.key("Paris is") == by_word.key("PARIS it is")


def test_vote_key_normalises_numbers_dates_and_case() -> None:
    import datetime as dt
    from decimal import Decimal

    assert vote_key(3) == vote_key(3.0) == vote_key(Decimal("3.00")) == vote_key("3") == "3"
    assert vote_key("-0.50") == "-0.5" and vote_key("12%") == "12"
    assert vote_key(dt.date(2024, 1, 2)) == "2024-01-02"
    assert vote_key("  Hello   World ") == "hello world"
    assert vote_key("1.2.3") == "1.2.3" and vote_key(True) != vote_key(1)


def test_agreement_over_samples_asked_for_counts_failed_ones(
    build: Any, server: ProviderServer, openai_tier: Any, anthropic_tier: Any
) -> None:
    gate = consistency(4, field="label", min_agreement=0.6, over="asked")
    server.script(
        MINI,
        Reply(choices=[Choice(data={"label": x}) for x in ("a", "a", " ", "b")]),
    )
    server.script(SONNET, Reply(data={"label": "a"}))
    receipt = receipt_of(
        build(tiers=[openai_tier(MINI, gates=[gate]), anthropic_tier(SONNET)], response_model=Pick)(
            "q"
        )
    )
    cheap = receipt.attempts[0]
    # 2 of the 3 that answered agree (0.67, a pass over "answered"); 2 of 4 asked for fail.
    assert cheap.reason == ("consistency: 2 of 4 samples asked for agree on 'label' (0.50 < 0.60)")
    assert cheap.scores == {"consistency": 0.5} and receipt.answered_by == STRONG


def test_stopping_early_saves_requests_on_an_easy_question(
    build: Any, server: ProviderServer, openai_tier: Any, anthropic_tier: Any
) -> None:
    gate = consistency(5, field="label", stop_early=True)
    tiers = [openai_tier(MINI, gates=[gate]), anthropic_tier(SONNET)]
    server.script(MINI, *(Reply(data={"label": "a"}) for _ in range(3)))

    easy = receipt_of(build(tiers=tiers, response_model=Pick)("easy"))

    # 3 of 5 agree: whatever the other two say, "a" stays the majority and 3/5 >= 0.6.
    assert [a.purpose for a in easy.attempts] == ["answer", "sample", "sample"]
    assert easy.attempts[0].votes == ("a", "a", "a") and len(server.requests) == 3
    assert easy.attempts[0].scores == {"consistency": 1.0}

    server.reset()
    hard = ("a", "b", "a", "c", "b")
    server.script(MINI, *(Reply(data={"label": x}) for x in hard))
    server.script(SONNET, Reply(data={"label": "a"}))
    receipt = receipt_of(build(tiers=tiers, response_model=Pick)("hard"))
    assert receipt.attempts[0].votes == hard and receipt.answered_by == STRONG
    assert len(server.requests) == 6  # a hard question draws every sample, then moves up


def test_stop_early_at_k_agreeing_and_a_decided_failure() -> None:
    gate = consistency(10, stop_early=3)
    assert not gate.decided(["a", "a"]) and gate.decided(["a", "a", "a"])
    assert not gate.decided(["a", "b", "a"])
    sure_fail = consistency(5, min_agreement=0.9, stop_early=True)
    # a: 2, b: 1, c: 1, one to go: the last could make b tie with a, so draw on.
    assert not sure_fail.decided(["a", "b", "c", "a"])
    # a: 3, b: 1, one to go: a stays the majority and 4/5 at best is below 0.9.
    assert sure_fail.decided(["a", "a", "a", "b"])
    assert not sure_fail.decided(["a", "a", "a"])  # 3/5..5/5: could pass or fail
    assert not consistency(5).decided(["a"] * 4)  # no stop_early: never decided early


def test_settings_are_checked() -> None:
    from escalate import ConfigurationError

    with pytest.raises(ConfigurationError, match="nothing to stop early"):
        consistency(3, one_request=True, stop_early=True)
    with pytest.raises(ConfigurationError, match="stop_early"):
        consistency(3, stop_early=7)
    with pytest.raises(ConfigurationError, match="key"):
        consistency(3, key="label")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="over"):
        consistency(3, over="all")  # type: ignore[arg-type]
    assert consistency(3, stop_early=True).one_request is False


def test_a_function_level_consistency_gate_warns_it_samples_the_strongest_tier() -> None:
    def prompt(text: str) -> str:
        return text

    with pytest.warns(SamplingCostWarning, match=r"the strongest \('openai/gpt-4o'\)"):
        escalating(
            tiers=["openai/gpt-4o-mini", "openai/gpt-4o"],
            response_model=Pick,
            gates=[consistency(3)],
        )(prompt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        escalating(
            tiers=[Tier("openai/gpt-4o-mini", gates=[consistency(3)]), "openai/gpt-4o"],
            response_model=Pick,
        )(prompt)


@pytest.mark.parametrize("face", ["sync", "async"])
def test_fake_tiers_answer_n_choices_in_one_request(face: str) -> None:
    import asyncio

    cheap = ScriptedTier(
        "cheap",
        {"label": "a"},
        {"label": ""},
        {"label": "a"},
        served_model=MINI,
        supports_n=True,
        gates=[consistency(3, field="label")],
    )
    strong = ScriptedTier("strong", served_model="gpt-4o")

    def prompt(text: str) -> str:
        return text

    async def aprompt(text: str) -> str:
        return text

    if face == "sync":
        pick = escalating(tiers=[cheap, strong], response_model=Pick)(prompt)("q")
    else:
        pick = asyncio.run(escalating(tiers=[cheap, strong], response_model=Pick)(aprompt)("q"))
    (attempt,) = receipt_of(pick).attempts
    assert (attempt.choices, attempt.votes) == (3, ("a", None, "a"))
    assert len(cheap.calls) == 1 and cheap.remaining == 0


def _cot(question: str) -> str:
    return f"Think step by step, then answer: {question}"


def _pot(question: str) -> str:
    return f"Write a program that computes the answer, then answer: {question}"


def test_a_mixture_of_two_prompts_votes_together_on_a_key(
    build: Any, server: ProviderServer, openai_tier: Any, anthropic_tier: Any
) -> None:
    from escalate.gates import Variant

    def reply(request: Any) -> Reply:
        text = request.last_user_text
        totals = ["12", "12.0", "13"] if "program" in text else ["$12", "11", "12"]
        return Reply(choices=[Choice(data={"total": t}) for t in totals[: request.n]])

    server.respond(MINI, reply)
    gate = consistency(
        6, field="total", min_agreement=0.6, variants=[Variant("pot", _pot, samples=3)]
    )
    answer = build(
        _cot, tiers=[openai_tier(MINI, gates=[gate]), anthropic_tier(SONNET)], response_model=Sum
    )("what is 7 + 5?")

    assert answer.total == "$12"
    receipt = receipt_of(answer)
    own, pot = receipt.attempts
    assert [r.body["n"] for r in server.requests] == [3, 3]  # one request per prompt
    assert "step by step" in server.requests[0].last_user_text
    assert "program" in server.requests[1].last_user_text
    assert (own.purpose, own.variant, own.choices) == ("answer", None, 3)
    assert (pot.purpose, pot.variant, pot.choices) == ("sample", "pot", 3)
    assert own.votes == ("12", "11", "12", "12", "12", "13")
    assert own.scores == {"consistency": pytest.approx(4 / 6)}


def test_a_mixture_with_separate_requests_says_each_samples_variant(
    build: Any, server: ProviderServer, openai_tier: Any, anthropic_tier: Any
) -> None:
    from escalate.gates import Variant

    server.respond(
        MINI,
        lambda request: Reply(data={"total": "3" if "program" in request.last_user_text else "4"}),
    )
    server.respond(SONNET, lambda request: Reply(data={"total": "4"}))
    gate = consistency(
        4, field="total", one_request=False, variants=[Variant("pot", _pot, samples=2)]
    )
    receipt = receipt_of(
        build(
            _cot,
            tiers=[openai_tier(MINI, gates=[gate]), anthropic_tier(SONNET)],
            response_model=Sum,
        )("q")
    )
    cheap = [a for a in receipt.attempts if a.tier == f"openai/{MINI}"]
    assert [(a.purpose, a.variant) for a in cheap] == [
        ("answer", None),
        ("sample", None),
        ("sample", "pot"),
        ("sample", "pot"),
    ]
    assert cheap[0].votes == ("4", "4", "3", "3") and receipt.answered_by == STRONG


def test_variants_are_checked() -> None:
    from escalate import ConfigurationError
    from escalate.gates import Variant

    with pytest.raises(ConfigurationError, match="leave none"):
        consistency(3, variants=[Variant("pot", _pot, 3)])
    with pytest.raises(ConfigurationError, match="distinct"):
        consistency(5, variants=[Variant("a", _pot, 1), Variant("a", _cot, 1)])
    with pytest.raises(ConfigurationError, match="sync function"):
        consistency(5, variants=[Variant("a", "not a function", 1)])  # type: ignore[arg-type]


def test_anthropic_samples_read_the_marked_prompt_from_the_cache(
    build: Any, server: ProviderServer, openai_tier: Any, anthropic_tier: Any
) -> None:
    server.respond(SONNET, lambda request: Reply(data={"label": "a"}))
    gate = consistency(3, field="label")
    tiers = [anthropic_tier(SONNET, gates=[gate]), openai_tier("gpt-4o")]
    long_prompt = "Classify the message. " + "An example of the task. " * 200
    pick = build(tiers=tiers, response_model=Pick)(long_prompt)

    receipt = receipt_of(pick)
    answer, *samples = receipt.attempts
    assert [a.purpose for a in receipt.attempts] == ["answer", "sample", "sample"]
    assert len(server.requests) == 3  # Anthropic has no n: one request per sample
    content = server.requests[0].body["messages"][-1]["content"]
    assert content[-1]["cache_control"] == {"type": "ephemeral"}
    # The answer wrote the prompt to the cache; each sample read it.
    assert answer.cached_tokens == 0
    assert answer.input_tokens is not None and answer.input_tokens > 1000
    for sample in samples:
        assert sample.cached_tokens is not None and sample.cached_tokens > 1000
        assert sample.input_tokens == answer.input_tokens
        assert sample.cost_usd is not None and answer.cost_usd is not None
        assert sample.cost_usd < answer.cost_usd / 2  # cache reads priced as such
    # Without samples nothing is marked.
    server.reset()
    server.respond(SONNET, lambda request: Reply(data={"label": "a"}))
    build(tiers=[anthropic_tier(SONNET), openai_tier("gpt-4o")], response_model=Pick)("plain")
    assert isinstance(server.requests[0].body["messages"][-1]["content"], str)
