"""How a call is filed and what its validators see (``escalate._routing``): ``task=`` and
``tags=`` on the decorator and in ``options(...)`` land on the receipt; bad tags are refused
when the decorator is applied; instructor's validation context reaches a validator's
``info.context``. Through the real SDKs over HTTP, sync and async faces, both providers."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationInfo, field_validator

from escalate import ConfigurationError, Tier, escalating, options, receipt_of
from escalate.testing._server import ProviderServer, Reply

from .conftest import KEY


class Invoice(BaseModel):
    customer: str
    total: float


class Priced(BaseModel):
    """Valid only in the currency the validation context names: a test of the context
    fails if the context does not arrive."""

    currency: str
    total: float

    @field_validator("currency")
    @classmethod
    def _in_the_expected_currency(cls, value: str, info: ValidationInfo) -> str:
        expected = (info.context or {}).get("currency")
        if value != expected:
            raise ValueError(f"currency must be {expected!r} (from the context), got {value!r}")
        return value


GOOD = {"customer": "ACME", "total": 12.5}


@pytest.fixture(params=["openai", "anthropic"])
def tiers(request: pytest.FixtureRequest, server: ProviderServer) -> list[Tier]:
    provider = str(request.param)
    url = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    return [Tier(f"{provider}/{m}", base_url=url, api_key=KEY) for m in ("cheap", "strong")]


# --- task and tags ----------------------------------------------------------------------------


def test_task_and_tags_land_on_the_receipt(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script("cheap", Reply(data=GOOD))
    extract = build(tiers=tiers, response_model=Invoice, task="invoices", tags={"team": "ap"})

    receipt = receipt_of(extract("ACME owes 12.50"))

    assert receipt.task == "invoices" and receipt.tags == {"team": "ap"}


def test_task_may_be_a_function_of_the_calls_arguments(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script("cheap", Reply(data=GOOD), Reply(data=GOOD))
    extract = build(
        tiers=tiers,
        response_model=Invoice,
        task=lambda text: "long-invoices" if len(text) > 10 else None,
    )

    assert receipt_of(extract("ACME owes 12.50, due Friday")).task == "long-invoices"
    assert receipt_of(extract("short")).task is None


def test_options_file_the_call_over_the_decorators_settings(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script("cheap", Reply(data=GOOD), Reply(data=GOOD))
    extract = build(tiers=tiers, response_model=Invoice, task="invoices", tags={"team": "ap"})

    with options(task="refunds", tags={"user_plan": "pro"}):
        inside = receipt_of(extract("ACME owes 12.50"))
    after = receipt_of(extract("ACME owes 12.50"))

    assert inside.task == "refunds" and inside.tags == {"team": "ap", "user_plan": "pro"}
    assert (after.task, after.tags) == ("invoices", {"team": "ap"})


def test_nested_options_keep_what_the_inner_block_does_not_set(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    """An inner block adds to the outer one (as its tags always did); it used to drop the
    outer block's task, start, budget, reason and context."""
    server.script("strong", Reply(data=GOOD))
    extract = build(tiers=tiers, response_model=Invoice, task="invoices")

    outer = options(task="refunds", start_at=1, reason="pro plan", tags={"plan": "pro"})
    with outer, options(tags={"region": "eu"}):  # the inner block sets tags only
        receipt = receipt_of(extract("ACME owes 12.50"))

    assert receipt.task == "refunds" and receipt.tags == {"plan": "pro", "region": "eu"}
    assert (receipt.route.start_tier, receipt.route.source, receipt.route.reason) == (
        tiers[1].display_name,
        "options",
        "pro plan",
    )
    assert server.requests_for("cheap") == []


@pytest.mark.parametrize(
    "tags",
    [{"team": 7}, {3: "three"}, ["team", "ap"], {"team": None}],
    ids=["int-value", "int-key", "a-list", "none-value"],
)
def test_bad_tags_are_refused_when_the_decorator_is_applied(tags: Any) -> None:
    with pytest.raises(ConfigurationError, match="tags must"):
        escalating(tiers=["openai/gpt-4o-mini"], response_model=Invoice, tags=tags)


def test_bad_tags_and_task_in_options_are_refused_at_once() -> None:
    bad_tags = options(tags={"team": 7})  # type: ignore[dict-item]
    with pytest.raises(ConfigurationError, match="tags must map str to str"), bad_tags:
        pass
    bad_task = options(task=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="task must be a str"), bad_task:
        pass


def test_a_task_that_is_neither_str_nor_function_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="task must be a str or a function"):
        escalating(tiers=["openai/gpt-4o-mini"], response_model=Invoice, task=3)  # type: ignore[arg-type]


# --- instructor's validation context ----------------------------------------------------------


def test_the_decorators_context_reaches_the_validator(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script("cheap", Reply(data={"currency": "EUR", "total": 3}))
    price = build(tiers=tiers, response_model=Priced, context={"currency": "EUR"})

    result = price("3 euros")

    assert result == Priced.model_validate(
        {"currency": "EUR", "total": 3}, context={"currency": "EUR"}
    )
    assert receipt_of(result).answered_by == tiers[0].display_name


def test_a_context_that_rejects_moves_the_task_up(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script("cheap", Reply(data={"currency": "USD", "total": 3}))
    server.script("strong", Reply(data={"currency": "EUR", "total": 3}))
    price = build(tiers=tiers, response_model=Priced, context={"currency": "EUR"})

    receipt = receipt_of(price("3 euros"))

    assert receipt.answered_by == tiers[1].display_name
    assert "currency must be 'EUR' (from the context)" in (receipt.attempts[0].reason or "")


def test_options_context_replaces_the_decorators(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script("cheap", Reply(data={"currency": "GBP", "total": 3}))
    price = build(tiers=tiers, response_model=Priced, context={"currency": "EUR"})

    with options(context={"currency": "GBP"}):
        result = price("3 pounds")

    assert result.currency == "GBP" and receipt_of(result).answered_by == tiers[0].display_name


def test_without_a_context_the_validator_sees_none(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    """The other half of the proof: the same answer fails when no context is given."""
    server.script("cheap", Reply(data={"currency": "EUR", "total": 3}))
    server.script("strong", Reply(data={"currency": "EUR", "total": 3}))
    price = build(tiers=tiers, response_model=Priced)

    with pytest.raises(Exception, match="from the context") as raised:
        price("3 euros")

    assert receipt_of(raised.value).outcome == "failed"
