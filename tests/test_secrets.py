"""No key text, whatever its source (argument, client, environment, URL), in a receipt, an
event, a raised error's str/repr, a formatted traceback of its chain, or escalate's own log
records. Providers do echo keys in errors ("Incorrect API key provided: sk-..."), so the
local server is scripted to echo them. Over the real SDKs and HTTP."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from escalate import Tier, events, receipt_of
from escalate.events import Event
from escalate.testing._server import Fault, ProviderServer

from .conftest import FAST_RETRY

ENV_KEY = "sk-env-4d1c9a77e0b2f3"
URL_KEY = "url-key-93b1c7aa5e"


class Invoice(BaseModel):
    total: int


@pytest.fixture(params=["openai", "anthropic"])
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def seen() -> Iterator[list[Event]]:
    heard: list[Event] = []
    events.set_hooks([heard.append])
    yield heard
    events.set_hooks([])


def _ours(record: logging.LogRecord) -> bool:
    # escalate's own records, and instructor's, which escalate filters while it calls; the
    # SDKs' and httpx's DEBUG logs are theirs (docs/faults.md says what they may show).
    return record.name.split(".")[0] in ("escalate", "instructor")


def _everything(error: BaseException, seen: list[Event], caplog: pytest.LogCaptureFixture) -> str:
    """Every text a key could leak into: the error, its traceback, receipt, events, logs."""
    receipt = receipt_of(error)
    return "\n".join(
        [
            str(error),
            repr(error),
            "".join(traceback.format_exception(error)),
            receipt.to_json(),
            repr(receipt),
            *(repr(event) for event in seen),
            *(record.getMessage() for record in caplog.records if _ours(record)),
        ]
    )


def test_a_key_from_the_environment_echoed_by_the_provider_leaks_nowhere(
    build: Callable[..., Callable[..., Any]],
    server: ProviderServer,
    provider: str,
    monkeypatch: pytest.MonkeyPatch,
    seen: list[Event],
    caplog: pytest.LogCaptureFixture,
) -> None:
    variable = "OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY"
    monkeypatch.setenv(variable, ENV_KEY)
    url = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    model = "gpt-4o-mini" if provider == "openai" else "claude-haiku-4-5"
    tier = Tier(f"{provider}/{model}", base_url=url)  # the key comes from the environment
    echo = f"Incorrect API key provided: {ENV_KEY}."
    server.script(
        model, Fault(500, message=echo), Fault(500, message=echo), Fault(401, message=echo)
    )

    caplog.set_level(logging.DEBUG)
    with pytest.raises(Exception) as raised:
        build(tiers=[tier], response_model=Invoice, retry=FAST_RETRY)("x")

    text = _everything(raised.value, seen, caplog)
    assert "[redacted]" in text and ENV_KEY not in text
    assert [a.status_code for a in receipt_of(raised.value).attempts] == [500, 500, 401]


def test_a_key_in_the_base_urls_query_string_leaks_nowhere(
    build: Callable[..., Callable[..., Any]],
    server: ProviderServer,
    seen: list[Event],
    caplog: pytest.LogCaptureFixture,
) -> None:
    tier = Tier(
        "compatible/local-model", base_url=f"{server.openai_base_url}?key={URL_KEY}", api_key="k"
    )
    echo = f"bad request to /v1/chat/completions?key={URL_KEY}"
    server.script("local-model", *[Fault(503, message=echo)] * 3)

    caplog.set_level(logging.DEBUG)
    with pytest.raises(Exception) as raised:
        build(tiers=[tier], response_model=Invoice, retry=FAST_RETRY)("x")

    text = _everything(raised.value, seen, caplog)
    assert URL_KEY not in text and "[redacted]" in text
