"""The adaptive start end to end, through the real SDK path (openai SDK + instructor over
HTTP to the project's provider server), sync and async faces: a class whose cheap tier
keeps failing starts on the strong tier once it has been seen enough, with the numbers on
the receipt; ``options(start_at=...)`` and ``route=`` still win."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import BaseModel

from escalate import AdaptiveStart, Price, Tier, options, receipt_of
from escalate.testing._server import ProviderServer, Reply

from .conftest import KEY


class Invoice(BaseModel):
    customer: str
    total: float


GOOD = {"customer": "ACME", "total": 12.5}
BAD = {"customer": "ACME", "total": "twelve and a half"}
# Tokens are priced by these, so every attempt has a known cost: the cheap tier costs a
# third of the strong one per token.
CHEAP, STRONG = Price(input="1", output="2"), Price(input="3", output="6")
SEEN = 4


@pytest.fixture
def tiers(server: ProviderServer) -> list[Tier]:
    return [
        Tier("openai/cheap", base_url=server.openai_base_url, api_key=KEY, price=CHEAP),
        Tier("openai/strong", base_url=server.openai_base_url, api_key=KEY, price=STRONG),
    ]


def _adaptive(**settings: Any) -> AdaptiveStart:
    settings.setdefault("min_observations", SEEN - 0.5)  # a decayed weight: just under SEEN
    settings.setdefault("explore", 0)
    settings.setdefault("seed_from_store", False)
    return AdaptiveStart(**settings)


def _escalate_repeatedly(server: ProviderServer, extract: Any, times: int) -> None:
    for _ in range(times):
        server.script("cheap", Reply(data=BAD))
        server.script("strong", Reply(data=GOOD))
        receipt = receipt_of(extract("ACME owes 12.50"))
        assert receipt.escalated
        assert receipt.route.source == "adaptive"
        assert receipt.route.start_tier == "openai/cheap"
        assert receipt.route.reason is not None and "too few calls" in receipt.route.reason


def test_a_class_that_keeps_escalating_starts_on_the_strong_tier(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    extract = build(tiers=tiers, response_model=Invoice, task="invoices", adaptive=_adaptive())
    _escalate_repeatedly(server, extract, SEEN)

    server.script("strong", Reply(data=GOOD))
    result = extract("ACME owes 12.50")
    assert result == Invoice(**GOOD)
    receipt = receipt_of(result)
    route = receipt.route
    assert (route.source, route.start_tier) == ("adaptive", "openai/strong")
    assert not receipt.escalated and receipt.answered_by == "openai/strong"
    assert len(server.requests_for("cheap")) == SEEN  # the fifth call never asked it
    numbers = route.adaptive
    assert numbers is not None
    assert numbers.task_class.endswith("/invoices") and numbers.tier == "openai/cheap"
    assert numbers.observations == pytest.approx(SEEN, rel=0.05)
    assert numbers.pass_rate == pytest.approx(1 / (2 + SEEN), rel=0.05)
    assert 0 < numbers.low < numbers.pass_rate < numbers.high < 1
    assert numbers.cost_start_cheap is not None and numbers.cost_start_higher is not None
    assert numbers.cost_start_higher < numbers.cost_start_cheap
    assert not numbers.explored
    # the strong tier's measured cost per call is what its attempts cost
    strong_costs = [a.cost_usd for a in receipt.attempts]
    assert strong_costs[0] is not None
    assert float(numbers.cost_start_higher) == pytest.approx(float(strong_costs[0]), rel=1e-6)
    assert route.reason is not None
    assert re.fullmatch(
        r"openai/cheap passes 17% \(90%: \d+-\d+%, 4 calls\): starting on openai/strong "
        r"costs \$0\.\d+ expected vs \$0\.\d+",
        route.reason,
    ), route.reason


def test_options_and_route_win_over_the_adaptive_start(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    def route(text: str) -> str | None:
        return "openai/cheap" if "cheap" in text else None

    extract = build(tiers=tiers, response_model=Invoice, adaptive=_adaptive(), route=route)
    _escalate_repeatedly(server, extract, SEEN)

    # (the cheap tier keeps failing on these calls too, so the estimate stays where it was)
    server.script("cheap", Reply(data=BAD))
    server.script("strong", Reply(data=GOOD))
    with options(start_at="openai/cheap", reason="the user asked"):
        first = receipt_of(extract("ACME owes 12.50"))
    assert (first.route.source, first.route.start_tier) == ("options", "openai/cheap")
    assert first.route.adaptive is None

    server.script("cheap", Reply(data=BAD))
    server.script("strong", Reply(data=GOOD))
    second = receipt_of(extract("cheap: ACME owes 12.50"))
    assert (second.route.source, second.route.start_tier) == ("route", "openai/cheap")

    # the route function has no opinion (None): the adaptive start decides
    server.script("strong", Reply(data=GOOD))
    third = receipt_of(extract("ACME owes 12.50"))
    assert (third.route.source, third.route.start_tier) == ("adaptive", "openai/strong")


def test_every_receipt_teaches_including_starts_chosen_elsewhere(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    extract = build(tiers=tiers, response_model=Invoice, adaptive=_adaptive(half_life=1e9))
    for _ in range(3):
        server.script("cheap", Reply(data=GOOD))
        with options(start_at=0):
            extract("ACME owes 12.50")
    server.script("strong", Reply(data=GOOD))
    with options(start_at="openai/strong"):
        extract("ACME owes 12.50")
    server.script("cheap", Reply(data=GOOD))
    receipt = receipt_of(extract("ACME owes 12.50"))
    numbers = receipt.route.adaptive
    assert numbers is not None
    assert numbers.observations == pytest.approx(3)  # the strong start says nothing of cheap
    assert numbers.pass_rate == pytest.approx(4 / 5)
    assert numbers.expected_costs is not None and set(numbers.expected_costs) == {
        "openai/cheap",
        "openai/strong",
    }
