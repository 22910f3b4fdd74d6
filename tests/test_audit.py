"""Audits of what passed, end to end: the real openai SDK and instructor over real HTTP
against the local provider server, every test through the sync and the async face.

An answer that passed on the cheap tier is sent again to the strong tier (``Audit``); the
audit is an attempt with ``purpose="audit"`` and its own cost, never the returned answer,
and the receipt's ``audit`` says whether the two agreed on the key."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

import escalate
from escalate import Audit, AuditVerdict, ConfigurationError, Price, Receipt, Tier, receipt_of
from escalate._sinks import add_sink, remove_sink
from escalate.events import Audited, Finished
from escalate.gates import min_length
from escalate.testing._server import Fault, ProviderServer, Reply

CHEAP, STRONG = "gpt-4o-mini", "gpt-4o"
CHEAP_PRICE = Price(input="0.15", output="0.60")
STRONG_PRICE = Price(input="2.50", output="10.00")


class Invoice(BaseModel):
    customer: str
    total: float


def tiers(openai_tier: Any) -> list[Tier]:
    return [openai_tier(CHEAP, price=CHEAP_PRICE), openai_tier(STRONG, price=STRONG_PRICE)]


def priced(price: Price, input_tokens: int, output_tokens: int) -> Decimal:
    million = Decimal(1_000_000)
    return (
        Decimal(str(price.input)) * input_tokens + Decimal(str(price.output)) * output_tokens
    ) / million


def test_an_inline_audit_that_agrees(build: Any, server: ProviderServer, openai_tier: Any) -> None:
    server.script(CHEAP, Reply(data={"customer": "ACME", "total": 12.5}))
    server.script(
        STRONG,
        Reply(data={"customer": "Acme Ltd", "total": 12.5}, input_tokens=90, output_tokens=7),
    )
    extract = build(
        tiers=tiers(openai_tier),
        response_model=Invoice,
        gates=[min_length("customer", 2)],
        audit=Audit(share=1.0, key="total"),
    )

    invoice = extract("ACME owes 12.50")

    assert invoice == Invoice(customer="ACME", total=12.5)  # the cheap answer, not the audit's
    receipt = receipt_of(invoice)
    assert receipt.answered_by == tiers(openai_tier)[0].display_name
    assert not receipt.escalated and receipt.moves == ()
    assert receipt.tiers_tried == (receipt.answered_by,)  # the audit's tier is no path
    answer, audit = receipt.attempts
    assert (answer.purpose, audit.purpose) == ("answer", "audit")
    assert audit.tier == tiers(openai_tier)[1].display_name and audit.outcome == "answered"
    assert (audit.input_tokens, audit.output_tokens) == (90, 7)
    assert audit.cost_usd == priced(STRONG_PRICE, 90, 7)  # its own tokens at its own price
    assert receipt.cost_usd == answer.cost_usd + audit.cost_usd  # it was paid
    assert receipt.audit == AuditVerdict(
        tier=audit.tier,
        of_tier=answer.tier,
        gates=("min_length(customer)",),
        key="total",
        answer_key="12.5",
        audit_key="12.5",
        agreed=True,
        mode="inline",
    )
    request = server.requests_for(STRONG)[0].body
    assert "ACME owes 12.50" in str(request["messages"])  # the same task
    assert request["tools"][0]["function"]["parameters"]["properties"].keys() == {
        "customer",
        "total",
    }
    assert Receipt.from_json(receipt.to_json()) == receipt


def test_an_inline_audit_that_disagrees(
    build: Any, server: ProviderServer, openai_tier: Any
) -> None:
    server.script(CHEAP, Reply(data={"customer": "ACME", "total": 12.5}))
    server.script(STRONG, Reply(data={"customer": "ACME", "total": 125}))
    heard: list[Any] = []
    extract = build(
        tiers=tiers(openai_tier),
        response_model=Invoice,
        audit=Audit(share=1.0, key="total"),
        hooks=[heard.append],
    )

    invoice = extract("ACME owes 12.50")

    assert invoice.total == 12.5
    receipt = receipt_of(invoice)
    assert receipt.audit is not None and receipt.audit.agreed is False
    assert (receipt.audit.answer_key, receipt.audit.audit_key) == ("12.5", "125")
    assert not receipt.escalated and receipt.outcome == "answered"
    audited = [e for e in heard if isinstance(e, Audited)]
    assert len(audited) == 1 and audited[0].verdict == receipt.audit
    assert isinstance(heard[-1], Finished) and heard[-1].receipt == receipt


def test_a_failed_audit_request_never_fails_the_call(
    build: Any, server: ProviderServer, openai_tier: Any
) -> None:
    server.script(CHEAP, Reply(data={"customer": "ACME", "total": 12.5}))
    server.script(STRONG, Fault(500))
    extract = build(tiers=tiers(openai_tier), response_model=Invoice, audit=Audit(share=1.0))

    invoice = extract("ACME owes 12.50")

    assert invoice == Invoice(customer="ACME", total=12.5)
    receipt = receipt_of(invoice)
    answer, audit = receipt.attempts
    assert (audit.purpose, audit.outcome, audit.status_code) == ("audit", "provider_error", 500)
    assert len(server.requests_for(STRONG)) == 1  # an audit is never retried
    assert receipt.audit is not None and receipt.audit.agreed is None
    assert receipt.audit.answer_key is not None and receipt.audit.audit_key is None
    assert receipt.cost_usd == answer.cost_usd + (audit.cost_usd or 0)
    assert receipt.outcome == "answered" and not receipt.escalated


def test_an_invalid_audit_answer_leaves_the_verdict_unknown(
    build: Any, server: ProviderServer, openai_tier: Any
) -> None:
    server.script(CHEAP, Reply(data={"customer": "ACME", "total": 12.5}))
    server.script(STRONG, Reply(data={"customer": "ACME"}))  # total missing
    extract = build(
        tiers=tiers(openai_tier), response_model=Invoice, audit=Audit(share=1.0, key="total")
    )

    receipt = receipt_of(extract("ACME owes 12.50"))

    audit = receipt.attempts[-1]
    assert (audit.purpose, audit.outcome, audit.trigger) == ("audit", "rejected", "validation")
    assert audit.cost_usd is not None and audit.cost_usd > 0
    assert receipt.audit is not None and receipt.audit.agreed is None
    assert receipt.cost_usd == sum(a.cost_usd or 0 for a in receipt.attempts)


def test_an_answer_from_the_auditing_tier_is_not_audited(
    build: Any, server: ProviderServer, openai_tier: Any
) -> None:
    server.script(CHEAP, Reply(data={"customer": "ACME"}))
    server.script(STRONG, Reply(data={"customer": "ACME", "total": 12.5}))
    extract = build(tiers=tiers(openai_tier), response_model=Invoice, audit=Audit(share=1.0))

    receipt = receipt_of(extract("ACME owes 12.50"))

    assert receipt.escalated and receipt.audit is None
    assert [a.purpose for a in receipt.attempts] == ["answer", "answer"]


def test_share_zero_never_audits_and_share_one_always(
    build: Any, server: ProviderServer, openai_tier: Any
) -> None:
    server.respond(CHEAP, lambda request: Reply(data={"customer": "ACME", "total": 1}))
    server.respond(STRONG, lambda request: Reply(data={"customer": "ACME", "total": 1}))
    never = build(tiers=tiers(openai_tier), response_model=Invoice, audit=Audit(share=0))
    always = build(tiers=tiers(openai_tier), response_model=Invoice, audit=Audit(share=1))

    assert all(receipt_of(never(f"doc {i}")).audit is None for i in range(5))
    assert server.requests_for(STRONG) == []
    verdicts = [receipt_of(always(f"doc {i}")).audit for i in range(5)]
    assert all(v is not None and v.agreed is True for v in verdicts)
    assert len(server.requests_for(STRONG)) == 5


def audited_of_many(face: str, openai_tier: Any, audit: Audit, calls: int) -> int:
    """How many of ``calls`` calls were audited (the async ones in one loop, so the
    clients are built once)."""
    settings: dict[str, Any] = {
        "tiers": tiers(openai_tier),
        "response_model": Invoice,
        "audit": audit,
    }
    if face == "sync":
        sync_fn = escalate.escalating(**settings)(lambda text: text)
        return sum(receipt_of(sync_fn(f"doc {i}")).audit is not None for i in range(calls))

    @escalate.escalating(**settings)
    async def async_fn(text: str) -> str:
        return text

    async def run() -> int:
        results = [await async_fn(f"doc {i}") for i in range(calls)]
        return sum(receipt_of(r).audit is not None for r in results)

    return asyncio.run(run())


def test_the_share_audited_over_many_calls_is_near_the_share(
    face: str, server: ProviderServer, openai_tier: Any
) -> None:
    server.respond(CHEAP, lambda request: Reply(data={"customer": "ACME", "total": 1}))
    server.respond(STRONG, lambda request: Reply(data={"customer": "ACME", "total": 1}))

    audited = audited_of_many(face, openai_tier, Audit(share=0.25, seed=7), 200)

    # 200 draws at p=0.25: mean 50, sd ~6.1; the seed makes it exact, the bound is loose.
    assert 30 <= audited <= 70
    assert len(server.requests_for(STRONG)) == audited
    assert audited_of_many(face, openai_tier, Audit(share=0.25, seed=7), 200) == audited


def test_an_injected_source_chooses_the_calls(
    build: Any, server: ProviderServer, openai_tier: Any
) -> None:
    server.respond(CHEAP, lambda request: Reply(data={"customer": "ACME", "total": 1}))
    server.respond(STRONG, lambda request: Reply(data={"customer": "ACME", "total": 1}))
    draws = iter([0.9, 0.01, 0.5, 0.04])
    extract = build(
        tiers=tiers(openai_tier),
        response_model=Invoice,
        audit=Audit(share=0.05, sample=lambda: next(draws)),
    )

    chosen = [receipt_of(extract(f"doc {i}")).audit is not None for i in range(4)]

    assert chosen == [False, True, False, True]


def test_a_background_audit_amends_the_receipt_later(
    build: Any, server: ProviderServer, openai_tier: Any
) -> None:
    server.script(CHEAP, Reply(data={"customer": "ACME", "total": 12.5}))
    gate = threading.Event()

    def strong(request: Any) -> Reply:
        gate.wait(10)  # the audit's request is held until the call has returned
        return Reply(data={"customer": "ACME", "total": 99}, input_tokens=50, output_tokens=5)

    server.script(STRONG, strong)
    received: list[Receipt] = []
    heard: list[Any] = []
    add_sink(received.append)
    try:
        extract = build(
            tiers=tiers(openai_tier),
            response_model=Invoice,
            audit=Audit(share=1.0, key="total", mode="background"),
            hooks=[heard.append],
        )
        invoice = extract("ACME owes 12.50")
        original = receipt_of(invoice)
        assert original.audit is None and len(original.attempts) == 1  # returned at once
        gate.set()
        assert escalate.audits_flush(timeout=10)
    finally:
        remove_sink(received.append)

    first, amended = received
    assert first == original  # the caller's object keeps its original receipt
    assert receipt_of(invoice) is original
    assert amended.id == original.id and amended.attempts[:1] == original.attempts
    audit = amended.attempts[1]
    assert audit.purpose == "audit" and audit.cost_usd == priced(STRONG_PRICE, 50, 5)
    assert amended.audit is not None
    assert (amended.audit.mode, amended.audit.agreed) == ("background", False)
    assert amended.cost_usd == original.cost_usd + audit.cost_usd  # type: ignore[operator]
    assert not amended.escalated and amended.moves == ()
    audited = [e for e in heard if isinstance(e, Audited)]
    assert len(audited) == 1 and audited[0].receipt == amended
    assert escalate.audits_stats().pending == 0


def test_an_async_background_audit_outlives_the_callers_loop(
    server: ProviderServer, openai_tier: Any
) -> None:
    server.script(CHEAP, Reply(data={"customer": "ACME", "total": 12.5}))
    server.script(STRONG, Reply(data={"customer": "ACME", "total": 12.5}))
    heard: list[Any] = []

    @escalate.escalating(
        tiers=tiers(openai_tier),
        response_model=Invoice,
        audit=Audit(share=1.0, mode="background"),
        hooks=[heard.append],
    )
    async def extract(text: str) -> str:
        return text

    invoice = asyncio.run(extract("ACME owes 12.50"))  # the loop closes as the call returns

    assert escalate.audits_flush(timeout=10)
    assert receipt_of(invoice).audit is None
    (audited,) = [e for e in heard if isinstance(e, Audited)]
    assert audited.verdict.agreed is True and audited.receipt.id == receipt_of(invoice).id


# --- the setting is checked when the decorator is applied ------------------------------------


@pytest.mark.parametrize(
    ("audit", "message"),
    [
        (Audit(share=1.5), "share must be in"),
        (Audit(share=-0.1), "share must be in"),
        (Audit(share=True), "share must be a number"),  # type: ignore[arg-type]
        (Audit(key="amount"), "not a field of Invoice"),
        (Audit(key=3), "key must be"),  # type: ignore[arg-type]
        (Audit(mode="later"), "mode must be"),  # type: ignore[arg-type]
        (Audit(tier="huge"), "not one of this plan's tiers"),
        (Audit(tier=0), "cheapest tier"),
        (Audit(tier=5), "out of range"),
        (Audit(seed=1, sample=lambda: 0.0), "not both"),
    ],
)
def test_bad_settings_fail_at_decoration(openai_tier: Any, audit: Audit, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        escalate.escalating(tiers=tiers(openai_tier), response_model=Invoice, audit=audit)


def test_one_tier_cannot_audit(openai_tier: Any) -> None:
    with pytest.raises(ConfigurationError, match="at least two tiers"):
        escalate.escalating(tiers=[openai_tier(CHEAP)], response_model=Invoice, audit=Audit())


def test_a_plain_answer_is_audited_whole(
    build: Any, server: ProviderServer, openai_tier: Any
) -> None:
    server.script(CHEAP, Reply(data={"answer": "1,200"}))
    server.script(STRONG, Reply(data={"answer": " 1200.00 "}))
    heard: list[Any] = []
    count = build(
        tiers=tiers(openai_tier),
        response_model=str,
        audit=Audit(share=1, key="answer"),
        hooks=[heard.append],
    )

    assert count("how many?") == "1,200"

    (finished,) = [e for e in heard if isinstance(e, Finished)]
    assert finished.receipt.audit is not None
    assert finished.receipt.audit.agreed is True  # "1,200" and " 1200.00 " are one number
    with pytest.raises(ConfigurationError, match="has no fields"):
        escalate.escalating(tiers=tiers(openai_tier), response_model=int, audit=Audit(key="total"))


def test_a_given_async_client_audits_on_the_callers_loop(
    server: ProviderServer, openai_tier: Any
) -> None:
    # A ready AsyncOpenAI client's connection pool belongs to the caller's loop: its
    # background audit runs there, and audits_aflush() awaits it before the loop ends.
    server.respond(CHEAP, lambda request: Reply(data={"customer": "ACME", "total": 1}))
    server.respond(STRONG, lambda request: Reply(data={"customer": "ACME", "total": 1}))
    heard: list[Any] = []

    async def main() -> Receipt:
        import openai

        async with openai.AsyncOpenAI(
            base_url=server.openai_base_url, api_key="k", max_retries=0
        ) as client:

            @escalate.escalating(
                tiers=[
                    Tier(f"openai/{CHEAP}", client=client),
                    Tier(f"openai/{STRONG}", client=client),
                ],
                response_model=Invoice,
                audit=Audit(share=1.0, mode="background"),
                hooks=[heard.append],
            )
            async def extract(text: str) -> str:
                return text

            invoice = await extract("ACME owes 1")
            with pytest.raises(RuntimeError, match="audits_aflush"):
                escalate.audits_flush(timeout=1)  # would wait on this very loop
            assert await escalate.audits_aflush(10)
            return receipt_of(invoice)

    original = asyncio.run(main())

    (audited,) = [e for e in heard if isinstance(e, Audited)]
    assert audited.receipt.id == original.id and audited.verdict.agreed is True
    assert audited.receipt.attempts[-1].outcome == "answered"


def test_a_loop_that_ends_first_cancels_its_audit_cleanly(
    server: ProviderServer, openai_tier: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server.respond(CHEAP, lambda request: Reply(data={"customer": "ACME", "total": 1}))
    reached, release = threading.Event(), threading.Event()

    def strong(request: Any) -> Reply:
        reached.set()
        release.wait(10)
        return Reply(data={"customer": "ACME", "total": 1})

    server.script(STRONG, strong)
    dropped = escalate.audits_stats().dropped

    async def main() -> None:
        import openai

        client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
        tiers = [Tier(f"openai/{CHEAP}", client=client), Tier(f"openai/{STRONG}", client=client)]

        @escalate.escalating(
            tiers=tiers, response_model=Invoice, audit=Audit(share=1.0, mode="background")
        )
        async def extract(text: str) -> str:
            return text

        await extract("ACME owes 1")
        await asyncio.to_thread(reached.wait, 10)  # the audit's request is in flight

    try:
        asyncio.run(main())  # ends with the audit in flight: asyncio.run cancels it
    finally:
        release.set()

    assert escalate.audits_stats().dropped == dropped + 1
    assert escalate.audits_flush(timeout=10)
    assert "its event loop ended first" in caplog.text
