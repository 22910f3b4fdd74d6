"""Usage to US dollars: a tier's own price if it has one, else genai-prices, else unknown.

Costs are never guessed. A price is looked up at the model that actually served the
request (``served_model``), not the one asked for; when neither the tier nor genai-prices
knows it, the cost is ``None`` and the note says why.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

__all__ = ["Price", "Priced", "price_usage"]

_MILLION_INT = 1_000_000
_MILLION = Decimal(_MILLION_INT)


@dataclass(frozen=True, kw_only=True)
class Price:
    """A price per million tokens, in USD, for tiers genai-prices does not know (or that
    you pay differently for: a negotiated rate, a self-hosted model).

    ``cached_input`` defaults to ``input`` (no discount assumed). ``note`` is copied into
    every receipt attempt this price priced (``cost_note``), so a reader sees where the
    figure came from: ``Price(input="0.2", output="0.6", note="our vLLM box, amortised")``.

    A local model costs what you say it costs: nothing is assumed for a ``compatible/``
    tier. :meth:`free` says it costs nothing, and the receipt says that you said so.
    """

    input: Decimal | float | str
    output: Decimal | float | str
    cached_input: Decimal | float | str | None = None
    note: str | None = None

    @classmethod
    def free(cls, note: str = "local model") -> Price:
        """A price of zero, for a model you run yourself (llama.cpp, Ollama, vLLM on your
        own machine). Receipts then price its attempts at ``0`` with ``cost_source ==
        "tier price"`` and ``cost_note`` saying the zero was the tier's own price."""
        return cls(input=0, output=0, note=f"{note}: priced at $0 by its tier (Price.free)")

    def __post_init__(self) -> None:
        for name in ("input", "output", "cached_input"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool):
                raise ValueError(f"Price.{name} must be a number, got {value!r}")
            as_decimal = Decimal(str(value))
            if not as_decimal.is_finite() or as_decimal < 0:
                raise ValueError(f"Price.{name} must be a finite number >= 0, got {value!r}")
            object.__setattr__(self, name, as_decimal)
        if self.note is not None and not isinstance(self.note, str):
            raise ValueError(f"Price.note must be a str, got {self.note!r}")

    @property
    def is_free(self) -> bool:
        """Every rate is zero: any usage, even an unreported one, costs nothing."""
        return self.input == 0 and self.output == 0 and self.cached_input in (None, 0)

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int) -> Decimal:
        cached_rate = Decimal(self.input if self.cached_input is None else self.cached_input)
        uncached = max(input_tokens - cached_tokens, 0)
        total = (
            uncached * Decimal(self.input)
            + cached_tokens * cached_rate
            + output_tokens * Decimal(self.output)
        )
        return total / _MILLION


@dataclass(frozen=True)
class Priced:
    cost_usd: Decimal | None
    source: Literal["genai-prices", "tier price"] | None
    note: str | None


@functools.cache
def _genai_prices() -> Any:
    # Imported on first use: the bundled price table costs ~260 ms to load.
    import genai_prices

    return genai_prices


def price_usage(
    *,
    provider: str,
    model: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
    cached_tokens: int | None,
    override: Price | None,
    priced_by_genai: bool,
) -> Priced:
    """Price one attempt's usage.

    ``priced_by_genai`` is false for tiers whose provider genai-prices cannot be trusted
    to know (an OpenAI-compatible server of your own): only ``override`` prices those.
    """
    if override is not None and override.is_free:
        return Priced(Decimal(0), "tier price", override.note)
    if input_tokens is None or output_tokens is None:
        return Priced(None, None, "the response reported no token usage")
    cached = cached_tokens or 0
    if override is not None:
        cost = override.cost(input_tokens, output_tokens, cached)
        return Priced(cost, "tier price", override.note)
    if not priced_by_genai:
        return Priced(
            None,
            None,
            f"no price for a {provider} tier: give Tier(price=Price(...)), "
            "or Price.free() for a model you run yourself",
        )
    if model is None:
        return Priced(None, None, "the response did not say which model served it")
    try:
        total = _genai_price(provider, model, input_tokens, cached, output_tokens)
    except LookupError:
        return Priced(None, None, f"genai-prices has no price for {provider} model {model!r}")
    return Priced(total, "genai-prices", None)


def _genai_price(provider: str, model: str, input_tokens: int, cached: int, output: int) -> Decimal:
    """genai-prices' price for this usage. Its full calculation costs ~0.25 ms, more than
    the rest of a call's bookkeeping together, so models with flat per-token prices are
    priced from rates read off genai-prices once a day per model (a test holds the two
    equal); tiered or conditional prices always take the full calculation."""
    rates = _flat_rates(provider, model, datetime.now(UTC).date())
    if rates is None:
        prices = _genai_prices()
        usage = prices.Usage(
            input_tokens=input_tokens, cache_read_tokens=cached, output_tokens=output
        )
        return Decimal(prices.calc_price(usage, model, provider_id=provider).total_price)
    per_request, per_input, per_cached, per_output = rates
    uncached = max(input_tokens - cached, 0)
    return per_request + uncached * per_input + cached * per_cached + output * per_output


@functools.lru_cache(maxsize=256)
def _flat_rates(
    provider: str, model: str, day: date
) -> tuple[Decimal, Decimal, Decimal, Decimal] | None:
    """(per request, per input, per cached input, per output token), or None when the
    model's price is not flat (tiers by context length, conditions): then no shortcut."""
    prices = _genai_prices()
    snapshot = prices.data_snapshot.get_snapshot()
    _, info = snapshot.find_provider_model(model, None, provider, None)  # LookupError if unknown
    price = info.prices
    tiered = prices.types.TieredPrices
    if not isinstance(price, prices.types.ModelPrice):
        return None
    if any(isinstance(value, tiered) for value in vars(price).values()):
        return None

    def cost(input_tokens: int, cached: int, output: int) -> Decimal:
        usage = prices.Usage(
            input_tokens=input_tokens, cache_read_tokens=cached, output_tokens=output
        )
        return Decimal(prices.calc_price(usage, model, provider_id=provider).total_price)

    base = cost(0, 0, 0)
    return (
        base,
        (cost(_MILLION_INT, 0, 0) - base) / _MILLION,
        (cost(_MILLION_INT, _MILLION_INT, 0) - base) / _MILLION,
        (cost(0, 0, _MILLION_INT) - base) / _MILLION,
    )
