"""The saving against always using the strongest tier: an estimate, and how it is made.

For each function, the *strongest tier* is the one its calls escalate to and never
escalate from (or, with no escalation on record, the last tier of its longest path). Its
price per token is genai-prices' price of the model that served it when genai-prices
knows that model, else the rate its own attempts were charged (fitted, exactly, from
their tokens and costs: that is the tier's ``Price``), else unknown: then the saving is
``None`` and the output says so; it is never guessed.

Each call's *always-strongest cost* is the tokens of its first request (its prompt, and
the answer it got) priced at that rate: what the call would have cost had it gone to the
strongest tier alone and received an answer of the same length.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from escalate._pricing import Price, price_usage

__all__ = [
    "METHOD",
    "Rate",
    "break_even_rate",
    "first_request_tokens",
    "strongest_tier",
    "tier_rate",
]

METHOD = (
    "Estimate: each call's own tokens (its first request's input and output) priced at the "
    "strongest tier's price (genai-prices for the model that served it, else the rate its "
    "own attempts were charged); not a measurement of what the strongest tier would have said."
)


@dataclass(frozen=True)
class Rate:
    """What one call's tokens cost at a tier, and where that price comes from."""

    tier: str
    model: str | None
    source: str | None
    """``genai-prices``, ``charged rate`` or None (unknown)."""
    price: Price | None
    provider: str | None = None

    def cost(self, input_tokens: int | None, output_tokens: int | None) -> Decimal | None:
        if self.price is None or input_tokens is None or output_tokens is None:
            return None
        if self.source == "genai-prices" and self.provider and self.model:
            return price_usage(
                provider=self.provider,
                model=self.model,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cached_tokens=0,
                override=None,
                priced_by_genai=True,
            ).cost_usd
        return self.price.cost(input_tokens, output_tokens, 0)


def strongest_tier(paths: Iterable[str], ups: Iterable[tuple[str, str]]) -> str | None:
    """The tier escalated to and never from; else the last tier of the longest path."""
    edges = list(ups)
    sources = {a for a, _ in edges}
    targets = Counter(b for _, b in edges if b not in sources)
    if targets:
        return targets.most_common(1)[0][0]
    longest = max((p.split(">") for p in paths if p != "(none)"), key=len, default=None)
    return longest[-1] if longest else None


def tier_rate(tier: str, attempts: Sequence[Any]) -> Rate:
    """The price per token of ``tier``, from the attempts made on it (rows of ``attempts``)."""
    own = [a for a in attempts if a.tier == tier]
    if not own:
        return Rate(tier, None, None, None)
    provider, model = Counter(
        (a.provider, a.served_model or a.requested_model) for a in own
    ).most_common(1)[0][0]
    if any(a.cost_source == "genai-prices" for a in own):
        probe = price_usage(
            provider=provider,
            model=model,
            input_tokens=1_000_000,
            output_tokens=0,
            cached_tokens=0,
            override=None,
            priced_by_genai=True,
        )
        if probe.cost_usd is not None:
            out = price_usage(
                provider=provider,
                model=model,
                input_tokens=0,
                output_tokens=1_000_000,
                cached_tokens=0,
                override=None,
                priced_by_genai=True,
            )
            assert out.cost_usd is not None
            price = Price(input=probe.cost_usd, output=out.cost_usd)
            return Rate(tier, model, "genai-prices", price, provider)
    fitted = _fit(own)
    return Rate(tier, model, None if fitted is None else "charged rate", fitted)


def _fit(attempts: Sequence[Any]) -> Price | None:
    """Per-million input and output rates that reproduce every charged cost exactly
    (least squares over the attempts, then checked), or None."""
    points = [
        (Fraction(a.input_tokens), Fraction(a.output_tokens), Fraction(a.cost_usd))
        for a in attempts
        if a.cost_usd is not None
        and a.input_tokens is not None
        and a.output_tokens is not None
        and not a.cached_tokens
    ]
    if len(points) < 2:
        return None
    zero = Fraction(0)
    sxx = sum((x * x for x, _, _ in points), zero)
    sxy = sum((x * y for x, y, _ in points), zero)
    syy = sum((y * y for _, y, _ in points), zero)
    sxc = sum((x * c for x, _, c in points), zero)
    syc = sum((y * c for _, y, c in points), zero)
    det = sxx * syy - sxy * sxy
    if det == 0:
        return None
    a = (sxc * syy - syc * sxy) / det
    b = (syc * sxx - sxc * sxy) / det
    tolerance = Fraction(1, 10**9)
    if any(abs(a * x + b * y - c) > tolerance * max(c, Fraction(1, 10**6)) for x, y, c in points):
        return None
    million = 1_000_000

    def as_decimal(value: Fraction) -> Decimal:
        return (Decimal(value.numerator) / Decimal(value.denominator)).normalize()

    return Price(input=as_decimal(a * million), output=as_decimal(b * million))


def first_request_tokens(attempts: Sequence[Any]) -> tuple[int | None, int | None]:
    """The input and output tokens of a call's first request that reported usage."""
    for a in attempts:
        if a.outcome != "skipped" and a.input_tokens is not None and a.output_tokens is not None:
            return int(a.input_tokens), int(a.output_tokens)
    return None, None


def break_even_rate(cheap_cost_per_call: Decimal, strong_cost_per_call: Decimal) -> float | None:
    """``1 - cheap / strong``: the escalation rate past which the cascade costs more than
    the strongest tier alone (the same figure as ``escalate calibrate``'s; None when the
    strongest tier's cost is zero)."""
    if strong_cost_per_call <= 0:
        return None
    return float(1 - cheap_cost_per_call / strong_cost_per_call)
