"""@escalating end to end: real openai/anthropic SDKs and real instructor over real HTTP
against the local provider server, every test through the sync and the async face."""

from __future__ import annotations

import pickle
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest
from pydantic import BaseModel, ValidationError

from escalate import (
    AllTiersFailed,
    Price,
    ProviderExhausted,
    Receipt,
    Retry,
    Tier,
    receipt_of,
)
from escalate.testing._server import Drop, Fault, Malformed, ProviderServer, Reply

from .conftest import KEY


class Invoice(BaseModel):
    customer: str
    total: float


GOOD = {"customer": "ACME", "total": 12.5}
BAD = {"customer": "ACME"}  # total missing


@pytest.fixture(params=["openai", "anthropic"])
def tiers(request: pytest.FixtureRequest, openai_tier: Any, anthropic_tier: Any) -> list[Tier]:
    """A cheap and a strong tier of one provider (the models the server scripts)."""
    if request.param == "openai":
        return [openai_tier("gpt-4o-mini"), openai_tier("gpt-4o")]
    return [anthropic_tier("claude-haiku-4-5"), anthropic_tier("claude-sonnet-4-5")]


def model(tier: Tier) -> str:
    return tier.model.partition("/")[2]


def test_first_tier_answers(build: Any, server: ProviderServer, tiers: list[Tier]) -> None:
    server.script(model(tiers[0]), Reply(data=GOOD))
    extract = build(tiers=tiers, response_model=Invoice)

    invoice = extract("ACME owes 12.50")

    assert type(invoice) is Invoice and invoice == Invoice(**GOOD)
    receipt = receipt_of(invoice)
    assert receipt.outcome == "answered" and receipt.answered_by == tiers[0].display_name
    assert not receipt.escalated and receipt.moves == ()
    (attempt,) = receipt.attempts
    assert attempt.outcome == "answered" and attempt.served_model == model(tiers[0])
    assert attempt.input_tokens and attempt.output_tokens and attempt.cost_usd
    assert receipt.cost_usd == attempt.cost_usd
    assert "ACME owes 12.50" in str(server.requests_for(model(tiers[0]))[0].body)
    assert server.requests_for(model(tiers[1])) == []


def test_validation_failure_escalates_with_the_original_prompt(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    cheap, strong = model(tiers[0]), model(tiers[1])
    server.script(cheap, Reply(data=BAD))
    server.script(strong, Reply(data=GOOD))
    extract = build(tiers=tiers, response_model=Invoice)

    invoice = extract("doc-1")

    assert invoice == Invoice(**GOOD)
    receipt = receipt_of(invoice)
    assert receipt.answered_by == tiers[1].display_name and receipt.escalated
    first, second = receipt.attempts
    assert (first.outcome, first.trigger) == ("rejected", "validation")
    assert first.reason is not None and "total" in first.reason
    assert first.raw_output is not None and '"customer"' in first.raw_output
    assert second.outcome == "answered"
    (move,) = receipt.escalations
    assert (move.from_tier, move.to_tier, move.trigger) == (
        tiers[0].display_name,
        tiers[1].display_name,
        "validation",
    )
    strong_request = str(server.requests_for(strong)[0].body)
    assert "doc-1" in strong_request and "total" not in strong_request.split("doc-1")[1][:40]
    assert '"customer": "ACME"' not in strong_request  # the failed answer is not passed on


def test_carry_failure_passes_the_rejected_answer_on(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script(model(tiers[0]), Reply(data=BAD))
    server.script(model(tiers[1]), Reply(data=GOOD))
    extract = build(tiers=tiers, response_model=Invoice, carry_failure=True)

    extract("doc-2")

    messages = server.requests_for(model(tiers[1]))[0].body["messages"]
    assert any("rejected (validation)" in str(m) and "total" in str(m) for m in messages)
    assert any(m["role"] == "assistant" and "ACME" in str(m["content"]) for m in messages)


def test_reasks_are_separate_attempts_with_their_own_tokens(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    cheap = tiers[0]
    tiers[0] = Tier(cheap.model, base_url=cheap.base_url, api_key=KEY, max_reasks=2)
    server.script(
        model(cheap),
        Reply(data=BAD, input_tokens=100, output_tokens=10),
        Reply(data={"customer": 3}, input_tokens=150, output_tokens=12),
        Reply(data=GOOD, input_tokens=210, output_tokens=14),
    )
    extract = build(tiers=tiers, response_model=Invoice)

    receipt = receipt_of(extract("doc-3"))

    assert [a.reask for a in receipt.attempts] == [0, 1, 2]
    assert [a.outcome for a in receipt.attempts] == ["rejected", "rejected", "answered"]
    # Per attempt, not instructor's running totals.
    assert [a.input_tokens for a in receipt.attempts] == [100, 150, 210]
    assert [a.output_tokens for a in receipt.attempts] == [10, 12, 14]
    assert receipt.input_tokens == 460 and not receipt.escalated
    assert len(server.requests_for(model(cheap))) == 3


def test_rate_limit_is_retried_after_retry_after(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script(model(tiers[0]), Fault(429, retry_after=0.2), Reply(data=GOOD))
    extract = build(tiers=tiers, response_model=Invoice)

    receipt = receipt_of(extract("doc-4"))

    limited, answered = receipt.attempts
    assert (limited.outcome, limited.trigger, limited.status_code) == (
        "provider_error",
        "rate_limit",
        429,
    )
    assert limited.cost_usd == 0 and limited.served_model is None
    assert answered.outcome == "answered" and receipt.answered_by == tiers[0].display_name
    assert not receipt.escalated and receipt.moves == ()
    assert receipt.latency_s >= 0.2  # the Retry-After was honoured


@pytest.mark.parametrize("fault", [Fault(503), Fault(529), Drop(), Malformed()])
def test_dead_deployment_moves_sideways(
    build: Any, server: ProviderServer, tiers: list[Tier], fault: object
) -> None:
    cheap = tiers[0]
    spare = Tier(f"{cheap.model}-eu", base_url=cheap.base_url, api_key=KEY, name="eu")
    tiers[0] = Tier(cheap.model, base_url=cheap.base_url, api_key=KEY, fallbacks=[spare])
    server.script(model(cheap), fault, fault)
    server.script(f"{model(cheap)}-eu", Reply(data=GOOD))
    extract = build(tiers=tiers, response_model=Invoice, retry=Retry(attempts=2, initial=0))

    receipt = receipt_of(extract("doc-5"))

    assert [a.outcome for a in receipt.attempts] == ["provider_error"] * 2 + ["answered"]
    assert [a.deployment for a in receipt.attempts][-1] == "eu"
    (move,) = receipt.moves
    assert (move.kind, move.from_deployment, move.to_deployment) == (
        "sideways",
        cheap.display_name,
        "eu",
    )
    assert not receipt.escalated and receipt.answered_by == cheap.display_name


def test_provider_failure_exhausted_moves_up_or_raises(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script(model(tiers[0]), Fault(500), Fault(500))
    server.script(model(tiers[1]), Reply(data=GOOD))
    retry = Retry(attempts=2, initial=0)
    receipt = receipt_of(build(tiers=tiers, response_model=Invoice, retry=retry)("x"))
    assert receipt.escalations[0].trigger == "server_error"
    assert receipt.answered_by == tiers[1].display_name

    server.script(model(tiers[0]), Fault(500), Fault(500))
    strict = build(tiers=tiers, response_model=Invoice, retry=retry, on_provider_exhausted="raise")
    with pytest.raises(ProviderExhausted) as raised:
        strict("x")
    assert [a.trigger for a in raised.value.receipt.attempts] == ["server_error"] * 2
    assert server.requests_for(model(tiers[1])) == [server.requests_for(model(tiers[1]))[0]]


def test_every_tier_failing_raises_with_the_whole_receipt(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script(model(tiers[0]), Reply(data=BAD))
    server.script(model(tiers[1]), Reply(text="I cannot help with invoices."))
    extract = build(tiers=tiers, response_model=Invoice)

    with pytest.raises(AllTiersFailed) as raised:
        extract("doc-6")

    error = raised.value
    receipt = receipt_of(error)
    assert receipt is error.receipt and receipt.outcome == "failed"
    assert [a.tier for a in receipt.attempts] == [t.display_name for t in tiers]
    assert receipt.attempts[0].raw_output is not None and "ACME" in receipt.attempts[0].raw_output
    assert "I cannot help" in (receipt.attempts[1].raw_output or "")
    assert all(a.outcome == "rejected" for a in receipt.attempts)
    assert isinstance(error.__cause__, (ValidationError, Exception))
    assert tiers[0].display_name in str(error) and "validation" in str(error)
    assert receipt.cost_usd is not None and receipt.cost_usd > 0  # failures cost money too


def test_unmatched_provider_error_passes_through_unchanged(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script(model(tiers[0]), Fault(401))
    extract = build(tiers=tiers, response_model=Invoice)

    with pytest.raises((openai.AuthenticationError, anthropic.AuthenticationError)):
        extract("doc-7")
    assert server.requests_for(model(tiers[1])) == []


def test_a_prompt_function_error_passes_through_as_is(build: Any, tiers: list[Tier]) -> None:
    boom = KeyError("customer")

    def prompt(text: str) -> str:
        raise boom

    extract = build(prompt, tiers=tiers, response_model=Invoice)
    with pytest.raises(KeyError) as raised:
        extract("x")
    assert raised.value is boom


def test_on_turns_a_matched_error_into_an_escalation(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script(model(tiers[0]), Fault(400, message="context length exceeded"))
    server.script(model(tiers[1]), Reply(data=GOOD))
    bad_request = (openai.BadRequestError, anthropic.BadRequestError)
    extract = build(tiers=tiers, response_model=Invoice, on=bad_request)

    receipt = receipt_of(extract("a very long document"))

    first = receipt.attempts[0]
    assert (first.outcome, first.trigger, first.status_code) == ("rejected", "on", 400)
    assert "context length exceeded" in (first.reason or "")
    assert receipt.escalations[0].trigger == "on"


def test_truncated_output_is_a_quality_failure(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script(model(tiers[0]), Reply(data=GOOD, finish_reason="length"))
    server.script(model(tiers[1]), Reply(data=GOOD))
    receipt = receipt_of(build(tiers=tiers, response_model=Invoice)("x"))
    assert receipt.attempts[0].trigger == "truncated" and receipt.escalated


def test_timeout_is_a_provider_failure_of_unknown_cost(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    cheap = tiers[0]
    tiers[0] = Tier(cheap.model, base_url=cheap.base_url, api_key=KEY, timeout=0.2)
    server.script(model(cheap), Reply(data=GOOD, delay=1.0))
    server.script(model(tiers[1]), Reply(data=GOOD))
    extract = build(tiers=tiers, response_model=Invoice, retry=Retry(attempts=1))

    receipt = receipt_of(extract("x"))

    timed_out = receipt.attempts[0]
    assert (timed_out.outcome, timed_out.trigger) == ("provider_error", "timeout")
    assert timed_out.cost_usd is None and "timed out" in (timed_out.cost_note or "")
    assert receipt.cost_usd is None and receipt.known_cost_usd > 0


def test_chat_messages_with_a_system_prompt(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script(model(tiers[0]), Reply(data=GOOD))

    def prompt(text: str) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": "You extract invoices."},
            {"role": "user", "content": text},
        ]

    build(prompt, tiers=tiers, response_model=Invoice)("doc-8")
    request = server.requests_for(model(tiers[0]))[0]
    assert request.system is not None and "You extract invoices." in request.system
    assert request.last_user_text.startswith("doc-8")


def test_a_bad_prompt_return_value_is_named(build: Any, tiers: list[Tier]) -> None:
    extract = build(lambda text: 42, tiers=tiers, response_model=Invoice)
    with pytest.raises(TypeError, match="returned int: return a str"):
        extract("x")


def test_receipt_round_trips_and_results_pickle(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script(model(tiers[0]), Reply(data=BAD))
    server.script(model(tiers[1]), Reply(data=GOOD))
    invoice = build(tiers=tiers, response_model=Invoice)("x")
    receipt = receipt_of(invoice)

    again = Receipt.from_json(receipt.to_json())
    assert again == receipt and again.cost_usd == receipt.cost_usd
    assert pickle.loads(pickle.dumps(invoice)) == invoice
    assert (
        invoice.model_dump() == GOOD
        and invoice.model_dump_json() == Invoice(**GOOD).model_dump_json()
    )


def test_a_failure_pickles_with_its_receipt(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script(model(tiers[0]), Reply(data=BAD))
    server.script(model(tiers[1]), Reply(data=BAD))
    with pytest.raises(AllTiersFailed) as raised:
        build(tiers=tiers, response_model=Invoice)("x")
    copy = pickle.loads(pickle.dumps(raised.value))
    assert copy.receipt == raised.value.receipt and str(copy) == str(raised.value)


def test_receipt_of_a_foreign_object_says_what_it_takes() -> None:
    with pytest.raises(LookupError, match="@escalating"):
        receipt_of(Invoice(**GOOD))


# --- costs, worked out by hand from genai-prices' table ---------------------------------


@pytest.mark.parametrize(
    ("tier_model", "served", "expected"),
    [
        # gpt-4o-mini: $0.15 in, $0.075 cached in, $0.60 out per million tokens.
        # 600 uncached * 0.15 + 400 cached * 0.075 + 200 out * 0.60 = 240 micro-dollars.
        ("openai/gpt-4o-mini", "gpt-4o-mini-2024-07-18", Decimal("0.00024")),
        # Served by gpt-4o instead ($2.50 / $1.25 cached / $10): priced at what served.
        # 600 * 2.5 + 400 * 1.25 + 200 * 10 = 4000 micro-dollars.
        ("openai/gpt-4o-mini", "gpt-4o-2024-08-06", Decimal("0.004")),
        # claude-sonnet-4-5: $3 in, $0.30 cache read, $15 out.
        # 600 * 3 + 400 * 0.3 + 200 * 15 = 4920 micro-dollars.
        ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5-20250929", Decimal("0.00492")),
        # claude-haiku-4-5: $1 in, $0.10 cache read, $5 out: 600 + 40 + 1000.
        ("anthropic/claude-haiku-4-5", "claude-haiku-4-5", Decimal("0.00164")),
    ],
)
def test_costs_match_the_price_table_by_hand(
    build: Any, server: ProviderServer, tier_model: str, served: str, expected: Decimal
) -> None:
    provider, _, name = tier_model.partition("/")
    base_url = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    server.script(
        name,
        Reply(
            data=GOOD, served_model=served, input_tokens=1000, output_tokens=200, cached_tokens=400
        ),
    )
    tier = Tier(tier_model, base_url=base_url, api_key=KEY)

    (attempt,) = receipt_of(build(tiers=[tier], response_model=Invoice)("x")).attempts

    assert (attempt.input_tokens, attempt.cached_tokens, attempt.output_tokens) == (1000, 400, 200)
    assert attempt.served_model == served and attempt.requested_model == name
    assert attempt.cost_source == "genai-prices"
    assert attempt.cost_usd == expected


def test_unknown_models_cost_none_and_say_so(build: Any, server: ProviderServer) -> None:
    server.script("my-finetune", Reply(data=GOOD, input_tokens=10, output_tokens=5))
    tier = Tier("openai/my-finetune", base_url=server.openai_base_url, api_key=KEY)
    (attempt,) = receipt_of(build(tiers=[tier], response_model=Invoice)("x")).attempts
    assert attempt.cost_usd is None and attempt.cost_source is None
    assert "no price" in (attempt.cost_note or "") and "my-finetune" in (attempt.cost_note or "")


def test_a_tier_price_overrides_the_table(build: Any, server: ProviderServer) -> None:
    server.script("llama3", Reply(data=GOOD, input_tokens=2000, output_tokens=500))
    tier = Tier(
        "compatible/llama3",
        base_url=server.openai_base_url,
        price=Price(input="0.20", output="0.60"),
    )
    (attempt,) = receipt_of(build(tiers=[tier], response_model=Invoice)("x")).attempts
    # 2000 * 0.20 + 500 * 0.60 = 700 micro-dollars.
    assert attempt.cost_usd == Decimal("0.0007") and attempt.cost_source == "tier price"


def test_a_compatible_tier_without_a_price_is_unknown(build: Any, server: ProviderServer) -> None:
    server.script("gpt-4o-mini", Reply(data=GOOD))
    tier = Tier("compatible/gpt-4o-mini", base_url=server.openai_base_url)
    (attempt,) = receipt_of(build(tiers=[tier], response_model=Invoice)("x")).attempts
    assert attempt.cost_usd is None and "Price" in (attempt.cost_note or "")


# --- secrets ---------------------------------------------------------------------------------


def test_no_key_reaches_a_receipt_its_json_or_an_error(
    build: Any, server: ProviderServer, face: str
) -> None:
    client_key = "sk-test-CLIENTKEY-77aa"
    client: Any = (
        openai.OpenAI(base_url=server.openai_base_url, api_key=client_key)
        if face == "sync"
        else openai.AsyncOpenAI(base_url=server.openai_base_url, api_key=client_key)
    )
    cheap = Tier("openai/gpt-4o-mini", client=client)
    strong = Tier("anthropic/claude-sonnet-4-5", base_url=server.anthropic_base_url, api_key=KEY)
    # Providers do echo keys in errors ("Incorrect API key provided: sk-..."): they must not leak.
    server.script("gpt-4o-mini", Fault(503, message=f"bad key {client_key}"), Reply(data=BAD))
    server.script("claude-sonnet-4-5", Fault(503, message=f"bad key {KEY}"), Reply(text=KEY))
    extract = build(tiers=[cheap, strong], response_model=Invoice)

    with pytest.raises(AllTiersFailed) as raised:
        extract("x")

    receipt = raised.value.receipt
    texts = [receipt.to_json(), repr(receipt), str(raised.value), repr(raised.value), repr(cheap)]
    texts += [receipt.summary(), repr(strong), str(raised.value.args)]
    for text in texts:
        assert KEY not in text and client_key not in text
    assert "[redacted]" in receipt.to_json()
    headers = server.requests_for("gpt-4o-mini")[0].headers
    assert headers["authorization"] == f"Bearer {client_key}"  # the key did reach the server
