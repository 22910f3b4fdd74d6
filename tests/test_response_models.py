"""Any type pydantic validates is a response model (``escalate._answers``; named apart from
test_answers.py, which checks ``escalate.demo.answers``): each answers, and
each one's validation failure moves the task up; through the real SDKs and instructor over
HTTP, sync and async faces, both providers."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, Literal

import pytest
from pydantic import AfterValidator, BaseModel, Field

from escalate import SelfEscalation, Tier, escalating, receipt_of, with_receipt
from escalate.testing import ScriptedTier
from escalate.testing._server import ProviderServer, Reply

from .conftest import KEY


@pytest.fixture(params=["openai", "anthropic"])
def tiers(request: pytest.FixtureRequest, server: ProviderServer) -> list[Tier]:
    """A cheap and a strong tier of one provider."""
    provider = str(request.param)
    url = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    return [Tier(f"{provider}/{m}", base_url=url, api_key=KEY) for m in ("cheap", "strong")]


# --- the seed example, as written -----------------------------------------------------------


def is_upper(value: str) -> str:
    if not value.isupper():
        raise ValueError("the answer must be in upper case")
    return value


def test_the_seed_example_runs_as_written_and_escalates_on_lower_case(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script("cheap", Reply(data={"answer": "hello there"}))
    server.script("strong", Reply(data={"answer": "HELLO THERE"}))
    shout = build(
        lambda text: f"Repeat in upper case: {text}",
        tiers=tiers,
        response_model=Annotated[str, AfterValidator(is_upper)],
    )

    answer = shout("hello there")

    assert answer == "HELLO THERE" and isinstance(answer, str)
    receipt = receipt_of(answer)
    assert receipt.answered_by == tiers[1].display_name
    first = receipt.attempts[0]
    assert (first.outcome, first.trigger) == ("rejected", "validation")
    assert "the answer must be in upper case" in (first.reason or "")
    (move,) = receipt.moves
    assert (move.kind, move.trigger) == ("up", "validation")


def test_the_seed_example_answers_on_the_cheap_tier_when_it_is_upper_case(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script("cheap", Reply(data={"answer": "HI"}))
    shout = build(tiers=tiers, response_model=Annotated[str, AfterValidator(is_upper)])

    answer = shout("hi")

    assert answer == "HI" and receipt_of(answer).answered_by == tiers[0].display_name
    assert server.requests_for("strong") == []
    # The tier was asked for {"answer": ...}: the schema instructor sent names the field.
    assert "answer" in json.dumps(server.requests_for("cheap")[0].body)


# --- every shape answers, and fails upward ----------------------------------------------------


class Item(BaseModel):
    name: str
    qty: int


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


Pet = Annotated[Cat | Dog, Field(discriminator="kind")]

SHAPES: list[tuple[str, Any, Any, Any, Any]] = [
    # id, response_model, a valid answer, the value it gives, an invalid answer
    ("int", int, 42, 42, "forty-two"),
    ("float", float, 2.5, 2.5, "a half"),
    ("bool", bool, True, True, "maybe"),
    ("literal", Literal["low", "high"], "high", "high", "medium"),
    (
        "list-of-models",
        list[Item],
        [{"name": "pen", "qty": 2}],
        [Item(name="pen", qty=2)],
        [{"name": "pen"}],
    ),
    ("union", int | list[int], [1, 2], [1, 2], {"one": 1}),
    ("discriminated-union", Pet, {"kind": "dog", "good": True}, Dog(kind="dog", good=True),
     {"kind": "fish"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("response_model", "valid", "value"),
    [pytest.param(m, v, x, id=i) for i, m, v, x, _ in SHAPES],
)
def test_each_shape_answers(
    face: str,
    server: ProviderServer,
    tiers: list[Tier],
    response_model: Any,
    valid: Any,
    value: Any,
) -> None:
    server.script("cheap", Reply(data={"answer": valid}))
    got, receipt = _call(face, tiers, response_model)

    assert got == value and isinstance(got, type(value))  # a str answer is a Text
    assert receipt.answered_by == tiers[0].display_name and receipt.attempts[0].purpose == "answer"


@pytest.mark.parametrize(
    ("response_model", "invalid", "valid", "value"),
    [pytest.param(m, bad, v, x, id=i) for i, m, v, x, bad in SHAPES],
)
def test_each_shapes_validation_failure_moves_up(
    face: str,
    server: ProviderServer,
    tiers: list[Tier],
    response_model: Any,
    invalid: Any,
    valid: Any,
    value: Any,
) -> None:
    server.script("cheap", Reply(data={"answer": invalid}))
    server.script("strong", Reply(data={"answer": valid}))
    got, receipt = _call(face, tiers, response_model)

    assert got == value
    assert receipt.answered_by == tiers[1].display_name
    assert [(a.outcome, a.trigger) for a in receipt.attempts] == [
        ("rejected", "validation"),
        ("answered", None),
    ]
    assert receipt.moves[0].trigger == "validation"


def _call(face: str, tiers: list[Tier], response_model: Any) -> tuple[Any, Any]:
    """Decorate a prompt for ``face`` and call it through ``with_receipt`` / ``awith_receipt``
    (these values cannot carry an attribute)."""
    from escalate import awith_receipt

    if face == "sync":

        @escalating(tiers=tiers, response_model=response_model)
        def ask(question: str) -> str:
            return question

        return with_receipt(ask, "q")

    @escalating(tiers=tiers, response_model=response_model)
    async def aask(question: str) -> str:
        return question

    return asyncio.run(awith_receipt(aask, "q"))


# --- self-escalation and fake tiers with a non-model type -----------------------------------


def test_self_escalation_with_a_non_model_response_type(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    asks = {"escalate": {"reason": "needs a calculator", "question": "What is 17 * 23?"}}
    server.script("cheap", Reply(data=asks))
    server.script("strong", Reply(data={"answer": 391}))
    ask = build(tiers=tiers, response_model=int, self_escalation=SelfEscalation())

    # build() runs an async function behind asyncio.run: with_receipt still sees its receipt
    # (the task runs in a copy of the caller's context).
    value, receipt = with_receipt(ask, "17 * 23?")

    assert value == 391
    assert receipt.self_escalations == 1 and receipt.moves[0].question == "What is 17 * 23?"
    cheap = server.requests_for("cheap")[0].body
    assert "escalate" in json.dumps(cheap) and "answer" in json.dumps(cheap)


@pytest.mark.parametrize(
    ("response_model", "bad", "bare", "value"),
    [
        (int, "seven", "7", 7),
        (list[Item], [{"name": "ink"}], [{"name": "ink", "qty": 1}], [Item(name="ink", qty=1)]),
        (str, ["not", "text"], "plain words", "plain words"),
    ],
)
def test_fake_tiers_take_a_bare_value_for_a_wrapped_type(
    face: str, response_model: Any, bad: Any, bare: Any, value: Any
) -> None:
    cheap = ScriptedTier("cheap", bad)  # bare too, and invalid: a validation failure
    strong = ScriptedTier("strong", bare)

    got, receipt = _call(face, [cheap, strong], response_model)

    assert got == value
    assert receipt.tiers_tried == ("cheap", "strong")
    assert receipt.attempts[0].trigger == "validation"
    assert receipt.attempts[1].outcome == "answered"
