"""Receipt sinks (``escalate._sinks``): every finished receipt, answered, failed, passed
through or cancelled, reaches the sinks added once per process, from the sync and the async
face alike; a failing sink is logged and breaks nothing. Real SDKs over HTTP, both
providers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from escalate import AllTiersFailed, Receipt, Tier, escalating, receipt_of
from escalate._sinks import add_sink, remove_sink
from escalate.testing._server import Fault, ProviderServer, Reply

from .conftest import KEY


class Invoice(BaseModel):
    customer: str
    total: float


GOOD = {"customer": "ACME", "total": 12.5}


@pytest.fixture(params=["openai", "anthropic"])
def tiers(request: pytest.FixtureRequest, server: ProviderServer) -> list[Tier]:
    provider = str(request.param)
    url = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    return [Tier(f"{provider}/{m}", base_url=url, api_key=KEY) for m in ("cheap", "strong")]


@pytest.fixture
def sunk() -> Iterator[list[Receipt]]:
    received: list[Receipt] = []
    add_sink(received.append)
    add_sink(received.append)  # once, however often it is added
    try:
        yield received
    finally:
        remove_sink(received.append)


def test_an_answered_call_reaches_the_sinks(
    build: Any, server: ProviderServer, tiers: list[Tier], sunk: list[Receipt]
) -> None:
    server.script("cheap", Reply(data=GOOD))

    invoice = build(tiers=tiers, response_model=Invoice)("ACME owes 12.50")

    assert sunk == [receipt_of(invoice)]


def test_a_failed_call_reaches_the_sinks(
    build: Any, server: ProviderServer, tiers: list[Tier], sunk: list[Receipt]
) -> None:
    server.script("cheap", Reply(data={"customer": "ACME"}))
    server.script("strong", Reply(data={"customer": "ACME"}))

    with pytest.raises(AllTiersFailed) as raised:
        build(tiers=tiers, response_model=Invoice)("ACME owes 12.50")

    assert sunk == [raised.value.receipt] and sunk[0].outcome == "failed"


def test_a_passed_through_error_reaches_the_sinks(
    build: Any, server: ProviderServer, tiers: list[Tier], sunk: list[Receipt]
) -> None:
    server.script("cheap", Fault(401))

    with pytest.raises(Exception, match="401") as raised:
        build(tiers=tiers, response_model=Invoice)("ACME owes 12.50")

    assert sunk == [receipt_of(raised.value)] and sunk[0].outcome == "error"


def test_a_cancelled_async_call_reaches_the_sinks(
    server: ProviderServer, tiers: list[Tier], sunk: list[Receipt]
) -> None:
    server.script("cheap", Reply(data=GOOD, delay=5))

    @escalating(tiers=tiers, response_model=Invoice)
    async def extract(text: str) -> str:
        return text

    async def stop_it() -> None:
        task = asyncio.ensure_future(extract("ACME owes 12.50"))
        while not server.requests_for("cheap"):  # noqa: ASYNC110 - the server is a thread
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(stop_it())

    (receipt,) = sunk
    assert receipt.outcome == "cancelled" and receipt.attempts[-1].outcome == "cancelled"


def test_a_failing_sink_is_logged_and_breaks_nothing(
    build: Any,
    server: ProviderServer,
    tiers: list[Tier],
    sunk: list[Receipt],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(receipt: Receipt) -> None:
        raise RuntimeError("the store is down")

    server.script("cheap", Reply(data=GOOD))
    add_sink(broken)
    try:
        with caplog.at_level(logging.WARNING, logger="escalate"):
            invoice = build(tiers=tiers, response_model=Invoice)("ACME owes 12.50")
    finally:
        remove_sink(broken)

    assert invoice == Invoice(**GOOD) and len(sunk) == 1
    assert "receipt sink" in caplog.text and "the store is down" in caplog.text


def test_a_sink_must_be_callable() -> None:
    with pytest.raises(TypeError, match="a sink is a callable"):
        add_sink("not a sink")  # type: ignore[arg-type]
