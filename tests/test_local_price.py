"""The price of a tier one runs oneself: what the user says, and the receipt says so.

A ``compatible/`` tier is never assumed to be free: without a price its cost is unknown.
``Price.free()`` says it costs nothing; its attempts then cost 0, priced by the tier, and the
note on each attempt says where the zero came from.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from escalate import Price, Receipt, Tier, receipt_of
from escalate._pricing import price_usage
from escalate.testing._server import Fault, ProviderServer, Reply

from .conftest import KEY


class Capital(BaseModel):
    country: str
    capital: str


FRANCE = {"country": "France", "capital": "Paris"}


def test_free_is_a_zero_price_with_a_note() -> None:
    free = Price.free()
    assert (free.input, free.output, free.cached_input) == (0, 0, None)
    assert free.is_free and "local model" in (free.note or "") and "Price.free" in (free.note or "")
    assert "my laptop" in (Price.free(note="my laptop").note or "")
    assert not Price(input=0, output="0.1").is_free
    assert Price(input=0, output=0).is_free  # a plain zero price is free too, without a note


def test_a_price_note_reaches_the_priced_usage() -> None:
    priced = price_usage(
        provider="compatible", model="smollm2", input_tokens=100, output_tokens=10,
        cached_tokens=0, override=Price(input=1, output=1, note="amortised GPU"),
        priced_by_genai=False,
    )  # fmt: skip
    assert priced.cost_usd == Decimal("0.00011") and priced.source == "tier price"
    assert priced.note == "amortised GPU"


def test_a_free_price_costs_nothing_even_without_usage() -> None:
    priced = price_usage(
        provider="compatible", model=None, input_tokens=None, output_tokens=None,
        cached_tokens=None, override=Price.free(), priced_by_genai=False,
    )  # fmt: skip
    assert priced.cost_usd == 0 and priced.source == "tier price"


@pytest.mark.parametrize("bad", [{"input": -1, "output": 0}, {"input": True, "output": 0}])
def test_a_price_refuses_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"Price\.input"):
        Price(**bad)
    with pytest.raises(ValueError, match=r"Price\.note"):
        Price(input=0, output=0, note=3)  # type: ignore[arg-type]


def test_a_compatible_tier_without_a_price_is_unknown_and_says_how_to_price_it(
    build: Any, server: ProviderServer
) -> None:
    server.script("smollm2", Reply(data=FRANCE, input_tokens=50, output_tokens=12))
    tier = Tier("compatible/smollm2", base_url=server.openai_base_url)
    receipt = receipt_of(build(tiers=[tier], response_model=Capital)("France?"))
    (attempt,) = receipt.attempts
    assert attempt.cost_usd is None and attempt.cost_source is None
    assert "Price.free()" in (attempt.cost_note or "")
    assert receipt.cost_usd is None


def test_a_free_local_tier_costs_zero_and_the_receipt_says_who_said_so(
    build: Any, server: ProviderServer
) -> None:
    # The local tier's first answer fails validation; the strong tier is a priced cloud model.
    server.script("smollm2", Reply(data={"country": "Japan"}, input_tokens=60, output_tokens=9))
    server.script("gpt-4o-mini", Reply(data=FRANCE, input_tokens=1000, output_tokens=100))
    local = Tier("compatible/smollm2", base_url=server.openai_base_url, price=Price.free())
    cloud = Tier("openai/gpt-4o-mini", base_url=server.openai_base_url, api_key=KEY)

    receipt = receipt_of(build(tiers=[local, cloud], response_model=Capital)("France?"))

    first, second = receipt.attempts
    assert first.outcome == "rejected" and first.trigger == "validation"
    assert first.cost_usd == 0 and first.cost_source == "tier price"
    assert "Price.free" in (first.cost_note or "") and first.input_tokens == 60
    assert second.cost_source == "genai-prices" and second.cost_usd is not None
    # 1000 * 0.15 + 100 * 0.60 per million.
    assert receipt.cost_usd == second.cost_usd == Decimal("0.00021")
    assert Receipt.from_json(receipt.to_json()) == receipt


def test_a_free_tier_that_times_out_still_costs_nothing(build: Any, server: ProviderServer) -> None:
    server.script("smollm2", Reply(data=FRANCE, delay=1.0))
    server.script("gpt-4o-mini", Reply(data=FRANCE))
    local = Tier(
        "compatible/smollm2",
        base_url=server.openai_base_url,
        price=Price.free(),
        timeout=0.2,
        on_timeout="escalate",
    )
    cloud = Tier("openai/gpt-4o-mini", base_url=server.openai_base_url, api_key=KEY)

    receipt = receipt_of(build(tiers=[local, cloud], response_model=Capital)("France?"))

    timed_out = receipt.attempts[0]
    assert timed_out.trigger in ("timeout", "slow") and timed_out.cost_usd == 0
    assert timed_out.cost_source == "tier price"


def test_an_unanswered_request_to_a_priced_tier_keeps_its_usual_cost(
    build: Any, server: ProviderServer
) -> None:
    server.script("smollm2", Fault(503), Reply(data=FRANCE, input_tokens=10, output_tokens=2))
    local = Tier(
        "compatible/smollm2", base_url=server.openai_base_url, price=Price(input=1, output=1)
    )
    receipt = receipt_of(build(tiers=[local], response_model=Capital)("France?"))
    failed, answered = receipt.attempts
    assert failed.cost_usd == 0 and failed.cost_source is None  # nothing was billed
    assert answered.cost_usd == Decimal("0.000012") and answered.cost_source == "tier price"
