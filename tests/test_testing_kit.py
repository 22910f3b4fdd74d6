"""The rest of the testing kit in-process: overrides, the provider block and the receipt
assertions, each through the sync and the async face where both exist, and each misuse
with the message a user would read (the fake tiers are tests/test_fakes.py)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from typing import Any

import pytest

from escalate import (
    ConfigurationError,
    Tier,
    escalating,
    receipt_of,
)
from escalate.exceptions import ProviderCallBlocked
from escalate.testing import (
    Fault,
    FunctionTier,
    ProviderServer,
    Reply,
    ScriptedTier,
    assert_answered_by,
    assert_cost_at_most,
    assert_escalated,
    assert_not_escalated,
    assert_tiers,
    block_providers,
    format_receipt,
    override,
)
from tests.kit_support import CHEAP, STRONG, Invoice, run


@escalating(tiers=["openai/gpt-4o-mini", "openai/gpt-4o"], response_model=Invoice)
def extract_invoice(text: str) -> str:
    return f"Extract the invoice: {text}"


@escalating(tiers=["openai/gpt-4o-mini"], response_model=Invoice)
async def extract_invoice_async(text: str) -> str:
    return f"Extract the invoice: {text}"


# --- override ----------------------------------------------------------------------------


def test_override_swaps_the_tiers_without_touching_the_call_site() -> None:
    cheap = ScriptedTier("cheap", {"total": 1})

    with override(extract_invoice, tiers=[cheap]):
        invoice = extract_invoice("x")

    assert_tiers(invoice, ["cheap"])
    assert cheap.calls == [[{"role": "user", "content": "Extract the invoice: x"}]]
    # Outside the block the real tiers are back: they would reach the provider.
    with block_providers(), pytest.raises(ProviderCallBlocked, match="'openai/gpt-4o-mini'"):
        extract_invoice("x")


async def test_override_works_for_async_functions() -> None:
    with override(extract_invoice_async, tiers=[ScriptedTier("cheap", {"total": 2})]):
        invoice = await extract_invoice_async("x")

    assert invoice.total == 2


def test_override_without_a_function_covers_every_escalating_function_and_nests() -> None:
    outer = ScriptedTier("outer", {"total": 1}, {"total": 2})
    inner = ScriptedTier("inner", {"total": 3})
    everything = ScriptedTier("everything", {"total": 4})

    with override(tiers=[outer]):
        assert extract_invoice("x").total == 1
        with override(extract_invoice, tiers=[inner]):
            assert extract_invoice("x").total == 3  # the narrower, inner override wins
        with (
            override(extract_invoice, tiers=[ScriptedTier("unused")]),
            override(tiers=[everything]),
        ):
            assert extract_invoice("x").total == 4  # the innermost wins
        assert extract_invoice("x").total == 2


def test_override_works_on_methods() -> None:
    class Extractor:
        @escalating(tiers=["openai/gpt-4o-mini"], response_model=Invoice)
        def extract(self, text: str) -> str:
            return text

    extractor = Extractor()
    with override(Extractor.extract, tiers=[ScriptedTier("by class", {"total": 1})]):
        assert_answered_by(extractor.extract("x"), "by class")
    with override(extractor.extract, tiers=[ScriptedTier("by instance", {"total": 2})]):
        assert_answered_by(extractor.extract("x"), "by instance")


def test_override_refuses_a_function_that_is_not_escalating() -> None:
    def plain(text: str) -> str:
        return text

    with (
        pytest.raises(TypeError, match="override\\(\\) takes an @escalating function") as caught,
        override(plain, tiers=[ScriptedTier("t")]),
    ):
        pass
    assert "plain" in str(caught.value)


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ([], "tiers is empty"),
        (["gpt-4o"], "must be 'provider/model'"),
        ([ScriptedTier("same"), ScriptedTier("same")], "duplicate tier name 'same'"),
    ],
)
def test_override_refuses_bad_tiers_naming_the_function(tiers: list[Any], message: str) -> None:
    with (
        pytest.raises(ConfigurationError, match=message) as caught,
        override(extract_invoice, tiers=tiers),
    ):
        pass
    assert str(caught.value).startswith("override(extract_invoice, tiers=...): ")


def test_override_refuses_an_async_fake_for_a_sync_function() -> None:
    async def answer(messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"total": 1}

    with (
        pytest.raises(ConfigurationError, match="has an async fn"),
        override(extract_invoice, tiers=[FunctionTier("async", answer)]),
    ):
        pass


def test_overrides_in_threads_do_not_see_each_other() -> None:
    barrier = threading.Barrier(2)
    totals: dict[int, int] = {}

    def worker(total: int) -> None:
        with override(extract_invoice, tiers=[ScriptedTier(f"t{total}", {"total": total})]):
            barrier.wait()  # both overrides are in force at once
            totals[total] = extract_invoice("x").total

    threads = [threading.Thread(target=worker, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert totals == {1: 1, 2: 2}


def test_an_override_reaches_a_thread_run_in_a_copy_of_the_context() -> None:
    result: list[Any] = []
    with override(extract_invoice, tiers=[ScriptedTier("t", {"total": 9})]):
        context = contextvars.copy_context()
    thread = threading.Thread(target=lambda: result.append(context.run(extract_invoice, "x")))
    thread.start()
    thread.join()

    assert result[0].total == 9


async def test_overrides_in_concurrent_tasks_do_not_see_each_other() -> None:
    async def task(total: int) -> int:
        tier = ScriptedTier(f"t{total}", Reply(data={"total": total}, delay=0.01))
        with override(extract_invoice_async, tiers=[tier]):
            await asyncio.sleep(0.01)
            return (await extract_invoice_async("x")).total

    assert list(await asyncio.gather(task(1), task(2))) == [1, 2]


# --- block_providers -----------------------------------------------------------------------


def test_blocking_providers_fails_a_real_request_loudly_and_leaves_fakes_alone() -> None:
    with block_providers():
        with pytest.raises(ProviderCallBlocked) as caught:
            extract_invoice("x")
        with override(extract_invoice, tiers=[ScriptedTier("fake", {"total": 1})]):
            assert extract_invoice("x").total == 1

    assert "block_providers() blocks provider calls" in str(caught.value)
    assert "tier 'openai/gpt-4o-mini'" in str(caught.value)


def test_the_block_ends_with_its_block() -> None:
    with ProviderServer(tokens="approx") as server:
        server.script("gpt-4o-mini", Reply(data={"total": 5}))
        real = Tier(
            "openai/gpt-4o-mini", base_url=server.openai_base_url, api_key="sk-test-not-real"
        )
        with override(extract_invoice, tiers=[real]):
            with block_providers(), pytest.raises(ProviderCallBlocked):
                extract_invoice("x")
            assert extract_invoice("x").total == 5
        assert len(server.requests) == 1


async def test_the_block_holds_in_async_code() -> None:
    with block_providers("my test"), pytest.raises(ProviderCallBlocked, match="my test"):
        await extract_invoice_async("x")


# --- assertions ----------------------------------------------------------------------------


@pytest.fixture
def escalated() -> Invoice:
    cheap = ScriptedTier("cheap", {"total": "x"}, price=CHEAP)
    strong = ScriptedTier("strong", Fault(429, retry_after=0), {"total": 1}, price=STRONG)
    result: Invoice = run("sync", [cheap, strong])
    return result


def test_a_failed_assertion_prints_the_receipts_path(escalated: Invoice) -> None:
    with pytest.raises(AssertionError) as caught:
        assert_tiers(escalated, ["cheap"])

    message = str(caught.value)
    assert message.startswith("expected the tiers ['cheap'] to run, but cheap -> strong ran\n")
    assert "path cheap -> strong; 3 attempt(s)" in message
    assert "1. cheap [cheap] rejected (validation): total: Input should be" in message
    assert "2. strong [strong] provider_error (rate_limit): HTTP 429" in message
    assert "moved up: cheap -> strong (validation)" in message
    assert format_receipt(receipt_of(escalated)) in message


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (lambda r: assert_not_escalated(r), "expected no escalation, but the call moved up"),
        (lambda r: assert_answered_by(r, "cheap"), "expected an answer from 'cheap', but it"),
        (lambda r: assert_escalated(r, trigger="gate"), "no move up has trigger 'gate'"),
        (lambda r: assert_escalated(r, reason_contains="zzz"), "reason containing 'zzz'"),
        (lambda r: assert_escalated(r, to_tier="cheap"), "no move up has to 'cheap'"),
        (lambda r: assert_cost_at_most(r, "0.000001"), "expected a cost of at most"),
    ],
)
def test_each_assertion_says_what_it_expected(
    escalated: Invoice, check: Callable[[Any], None], message: str
) -> None:
    with pytest.raises(AssertionError, match=message) as caught:
        check(escalated)
    assert "receipt of" in str(caught.value)


def test_assertions_pass_on_what_they_describe(escalated: Invoice) -> None:
    receipt = receipt_of(escalated)
    assert_escalated(receipt, trigger="validation", from_tier="cheap", to_tier="strong")
    assert_answered_by(receipt, "strong")
    assert_cost_at_most(escalated, receipt.cost_usd or 0)


def test_asserting_an_escalation_that_never_happened() -> None:
    invoice = run("sync", [ScriptedTier("cheap", {"total": 1})])

    with pytest.raises(AssertionError, match=r"expected the call to escalate .*never moved up"):
        assert_escalated(invoice, trigger="validation")


def test_assertions_refuse_what_has_no_receipt() -> None:
    with pytest.raises(TypeError, match="assert_tiers\\(\\) needs a receipt: no receipt"):
        assert_tiers(Invoice(total=1), ["cheap"])
    with pytest.raises(TypeError, match="list of tier names, got the str"):
        assert_tiers(Invoice(total=1), "cheap")
    with pytest.raises(TypeError, match="number of dollars"):
        assert_cost_at_most(Invoice(total=1), "cheap")
