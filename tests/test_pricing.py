"""Pricing: the flat-rate shortcut must equal genai-prices' own calculation exactly, and
tiered prices must take the full calculation."""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price

from escalate import Price
from escalate._pricing import _flat_rates, _genai_price, price_usage

MODELS = [
    ("openai", "gpt-4o-mini-2024-07-18"),
    ("openai", "gpt-4o"),
    ("openai", "gpt-4-1106-preview"),
    ("anthropic", "claude-haiku-4-5"),
    ("anthropic", "claude-sonnet-4-5"),  # tiered above 200k input tokens
]


@pytest.mark.parametrize(("provider", "model"), MODELS)
def test_the_shortcut_equals_genai_prices(provider: str, model: str) -> None:
    rng = random.Random(7)
    for _ in range(150):
        input_tokens = rng.randint(0, 400_000)
        cached = rng.randint(0, input_tokens)
        output = rng.randint(0, 30_000)
        usage = Usage(input_tokens=input_tokens, cache_read_tokens=cached, output_tokens=output)
        expected = Decimal(calc_price(usage, model, provider_id=provider).total_price)
        assert _genai_price(provider, model, input_tokens, cached, output) == expected


def test_tiered_prices_take_the_full_calculation() -> None:
    assert _flat_rates("anthropic", "claude-sonnet-4-5", date.today()) is None
    assert _flat_rates("openai", "gpt-4o-mini", date.today()) is not None
    # Above 200k input tokens sonnet costs $6/$22.5 per million.
    assert _genai_price("anthropic", "claude-sonnet-4-5", 300_000, 0, 1_000) == Decimal("1.8225")


def test_unknown_and_unpriced_usage_say_why() -> None:
    unknown = price_usage(
        provider="openai", model="no-such-model", input_tokens=1, output_tokens=1,
        cached_tokens=0, override=None, priced_by_genai=True,
    )  # fmt: skip
    assert unknown.cost_usd is None and "no-such-model" in (unknown.note or "")
    no_usage = price_usage(
        provider="openai", model="gpt-4o", input_tokens=None, output_tokens=None,
        cached_tokens=None, override=None, priced_by_genai=True,
    )  # fmt: skip
    assert no_usage.cost_usd is None and "no token usage" in (no_usage.note or "")
    own = price_usage(
        provider="openai", model="gpt-4o", input_tokens=1000, output_tokens=100,
        cached_tokens=500, override=Price(input=1, output=2, cached_input="0.5"),
        priced_by_genai=True,
    )  # fmt: skip
    # 500 * 1 + 500 * 0.5 + 100 * 2 = 950 micro-dollars.
    assert own.cost_usd == Decimal("0.00095") and own.source == "tier price"
