"""What the in-process testing-kit tests share: a model to extract, prices, and calling a
fresh escalating function over some tiers through the sync or the async face."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from escalate import AllTiersFailed, Price, Retry, escalating

NO_WAIT = Retry(attempts=3, initial=0, max=0, jitter=0)
CHEAP = Price(input="1", output="2")  # $ per million tokens
STRONG = Price(input="10", output="20")


class Invoice(BaseModel):
    total: int
    currency: str = "EUR"


def run(face: str, tiers: list[Any], text: str = "invoice 1", **kwargs: Any) -> Any:
    """Call a fresh escalating function over ``tiers`` through the sync or async face."""
    kwargs.setdefault("retry", NO_WAIT)
    if face == "sync":

        @escalating(tiers=tiers, response_model=Invoice, **kwargs)
        def extract(text: str) -> str:
            return f"Extract: {text}"

        return extract(text)

    @escalating(tiers=tiers, response_model=Invoice, **kwargs)
    async def extract_async(text: str) -> str:
        return f"Extract: {text}"

    return asyncio.run(extract_async(text))


def fails(face: str, tiers: list[Any], **kwargs: Any) -> AllTiersFailed:
    with pytest.raises(AllTiersFailed) as caught:
        run(face, tiers, **kwargs)
    return caught.value
