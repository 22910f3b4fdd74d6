"""Results carry their receipt (``escalate._results``): a user's model behaves exactly as the
same model built without escalate, copies keep the receipt, a ``str`` answer is a ``Text``,
and ``with_receipt`` / ``awith_receipt`` serve values that cannot carry one; through the
real SDKs over HTTP, sync and async faces, both providers."""

from __future__ import annotations

import asyncio
import copy
import pickle
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from escalate import (
    Receipt,
    Text,
    Tier,
    awith_receipt,
    escalating,
    receipt_of,
    with_receipt,
)
from escalate.testing._server import ProviderServer, Reply

from .conftest import KEY


class Invoice(BaseModel):
    customer: str
    total: float


class FrozenInvoice(BaseModel):
    model_config = ConfigDict(frozen=True)

    customer: str
    total: float


class Line(BaseModel):
    sku: str
    qty: int


GOOD = {"customer": "ACME", "total": 12.5}


@pytest.fixture(params=["openai", "anthropic"])
def tiers(request: pytest.FixtureRequest, server: ProviderServer) -> list[Tier]:
    provider = str(request.param)
    url = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    return [Tier(f"{provider}/{m}", base_url=url, api_key=KEY) for m in ("cheap", "strong")]


@pytest.mark.parametrize("model", [Invoice, FrozenInvoice])
def test_a_result_is_exactly_the_users_model(
    build: Any, server: ProviderServer, tiers: list[Tier], model: type[BaseModel]
) -> None:
    server.script("cheap", Reply(data=GOOD))
    result = build(tiers=tiers, response_model=model)("ACME owes 12.50")
    plain = model(**GOOD)

    assert type(result) is model
    assert result == plain and plain == result
    assert result.model_dump() == plain.model_dump()
    assert result.model_dump_json() == plain.model_dump_json()
    assert repr(result) == repr(plain) and str(result) == str(plain)
    assert result.model_fields_set == plain.model_fields_set
    if model is FrozenInvoice:
        assert hash(result) == hash(plain)
        assert {result, plain} == {plain}
    assert isinstance(result._receipt, Receipt)  # type: ignore[attr-defined]
    assert receipt_of(result) is result._receipt  # type: ignore[attr-defined]


def test_copies_keep_the_receipt(build: Any, server: ProviderServer, tiers: list[Tier]) -> None:
    server.script("cheap", Reply(data={"customer": "ACME"}))  # invalid: up to strong
    server.script("strong", Reply(data=GOOD))
    result = build(tiers=tiers, response_model=Invoice)("ACME owes 12.50")
    receipt = receipt_of(result)
    assert receipt.escalated

    copies = {
        "model_copy": result.model_copy(),
        "model_copy(update)": result.model_copy(update={"total": 13.0}),
        "copy.copy": copy.copy(result),
        "copy.deepcopy": copy.deepcopy(result),
        "pickle": pickle.loads(pickle.dumps(result)),
    }
    for how, other in copies.items():
        assert receipt_of(other) == receipt, how
        assert other._receipt == receipt, how
    assert copies["pickle"] == result and copies["model_copy(update)"].total == 13.0


def test_a_str_answer_is_a_text_with_the_same_properties(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script("cheap", Reply(data={"answer": "Twelve fifty."}))
    answer = build(tiers=tiers, response_model=str)("How much?")

    assert type(answer) is Text and isinstance(answer, str)
    assert answer == "Twelve fifty." and hash(answer) == hash("Twelve fifty.")
    assert repr(answer) == repr("Twelve fifty.") and answer.upper() == "TWELVE FIFTY."
    receipt = receipt_of(answer)
    assert receipt.answered_by == tiers[0].display_name and answer._receipt is receipt
    for other in (copy.copy(answer), copy.deepcopy(answer), pickle.loads(pickle.dumps(answer))):
        assert other == answer and receipt_of(other) == receipt


def test_a_value_that_cannot_carry_a_receipt_says_to_use_with_receipt() -> None:
    for value in (42, True, None, [1, 2], "a plain str"):
        with pytest.raises(LookupError, match="with_receipt"):
            receipt_of(value)


@pytest.mark.parametrize(
    ("response_model", "data", "value"),
    [
        (int, 42, 42),
        (bool, False, False),
        (list[Line], [{"sku": "A-1", "qty": 3}], [Line(sku="A-1", qty=3)]),
    ],
    ids=["int", "bool", "list-of-models"],
)
def test_with_receipt_returns_the_value_and_its_receipt(
    face: str,
    server: ProviderServer,
    tiers: list[Tier],
    response_model: Any,
    data: Any,
    value: Any,
) -> None:
    server.script("cheap", Reply(data={"answer": data}))

    if face == "sync":

        @escalating(tiers=tiers, response_model=response_model)
        def ask(question: str) -> str:
            return question

        got, receipt = with_receipt(ask, "q")
    else:

        @escalating(tiers=tiers, response_model=response_model)
        async def aask(question: str) -> str:
            return question

        got, receipt = asyncio.run(awith_receipt(aask, "q"))

    assert got == value and type(got) is type(value)
    assert isinstance(receipt, Receipt) and receipt.outcome == "answered"
    assert receipt.answered_by == tiers[0].display_name
    assert receipt.function.endswith("ask")


def test_with_receipt_gives_the_outer_calls_receipt(server: ProviderServer) -> None:
    """A prompt function that makes an escalating call of its own: the outer call ends last,
    so its receipt is the one returned."""
    cheap = Tier("openai/cheap", base_url=server.openai_base_url, api_key=KEY)
    server.script("cheap", Reply(data={"answer": "inner"}), Reply(data={"answer": 7}))

    @escalating(tiers=[cheap], response_model=str)
    def inner(q: str) -> str:
        return q

    @escalating(tiers=[cheap], response_model=int)
    def outer(q: str) -> str:
        return f"{inner(q)}?"

    value, receipt = with_receipt(outer, "q")

    assert value == 7 and receipt.function.endswith("outer")


def test_with_receipt_refuses_a_function_that_is_not_escalating() -> None:
    with pytest.raises(TypeError, match="made no escalating call"):
        with_receipt(len, "abc")
