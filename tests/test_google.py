"""The google provider: Gemini through its OpenAI-compatible endpoint, over the openai SDK
and instructor against the local server, priced by genai-prices, in a ladder too."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from escalate import Tier, receipt_of
from escalate._providers import GEMINI_OPENAI_URL, PROVIDERS
from escalate.conversation import Conversation, high_stakes
from escalate.testing._server import Fault, ProviderServer, Reply
from tests.conftest import FAST_RETRY
from tests.conversation_support import has_memory, is_memory_write, play

pytest_plugins = ["tests.server_fixtures"]


class City(BaseModel):
    name: str


def _google(server: ProviderServer, model: str) -> Tier:
    return Tier(f"google/{model}", base_url=server.google_base_url, api_key="g-key")


def test_a_google_tier_answers_escalates_and_is_priced(server: ProviderServer, build: Any) -> None:
    flash, pro = _google(server, "gemini-2.5-flash"), _google(server, "gemini-2.5-pro")
    server.script("gemini-2.5-flash", Reply(data={"nom": "Paris"}))
    server.script("gemini-2.5-pro", Fault(503), Reply(data={"name": "Paris"}))
    find = build(tiers=[flash, pro], response_model=City, retry=FAST_RETRY)

    city = find("the capital of France")
    assert city == City(name="Paris")
    receipt = receipt_of(city)
    assert [(a.tier, a.outcome, a.trigger) for a in receipt.attempts] == [
        ("google/gemini-2.5-flash", "rejected", "validation"),
        ("google/gemini-2.5-pro", "provider_error", "server_error"),
        ("google/gemini-2.5-pro", "answered", None),
    ]
    assert {a.provider for a in receipt.attempts} == {"google"}
    # Over the OpenAI wire format, at the Gemini path, with the key as a bearer token.
    request = server.requests_for("gemini-2.5-flash")[0]
    assert request.path == "/v1beta/openai/chat/completions"
    assert request.headers["authorization"] == "Bearer g-key"
    assert request.body["tools"][0]["function"]["name"] == "City"
    # genai-prices' google prices: flash $0.30/$2.50, pro $1.25/$10 per million tokens.
    first = receipt.attempts[0]
    assert first.cost_source == "genai-prices"
    expected = (
        Decimal(first.input_tokens or 0) * Decimal("0.30")
        + Decimal(first.output_tokens or 0) * Decimal("2.50")
    ) / 1_000_000
    assert first.cost_usd == expected


def test_the_google_entry_is_data(monkeypatch: pytest.MonkeyPatch) -> None:
    google = PROVIDERS["google"]
    assert (google.sdk, google.genai_provider_id, google.supports_n) == ("openai", "google", False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", "from-gemini-env")
    client = google.build_client(False, None, None)
    assert client.api_key == "from-gemini-env" and str(client.base_url) == GEMINI_OPENAI_URL
    monkeypatch.setenv("GOOGLE_API_KEY", "from-google-env")
    assert google.build_client(True, None, None).api_key == "from-google-env"


@pytest.mark.parametrize("face", ["sync", "async"])
def test_a_google_ladder_climbs_and_hands_over(server: ProviderServer, face: str) -> None:
    play(server, "gemini-2.5-pro", "gemini-2.5-flash")
    pro, flash = _google(server, "gemini-2.5-pro"), _google(server, "gemini-2.5-flash")
    chat = Conversation(ladder=[(pro, 1), (flash, None)], triggers=[high_stakes()])
    for text in ["frame", "routine", "a security review", "routine"]:
        if face == "sync":
            chat.send(text)
        else:
            asyncio.run(chat.asend(text))
    assert [t.answered_by for t in chat.receipt.turns] == [
        pro.model,
        flash.model,
        pro.model,
        flash.model,
    ]
    turns = [r for r in server.requests if not is_memory_write(r)]
    assert [has_memory(r) for r in turns] == [False, True, True, True]
    assert chat.receipt.cost_usd is not None and chat.receipt.cost_usd > 0
