"""Configuration mistakes fail when the decorator is applied, with a message naming them;
the decorated function keeps its name, docstring, signature and async-ness."""

from __future__ import annotations

import inspect
import re
import types
from typing import Any

import anthropic
import openai
import pytest
from pydantic import BaseModel

import escalate
from escalate import ConfigurationError, Price, Retry, Tier, escalating, receipt_of
from escalate.testing._server import ProviderServer, Reply


class Answer(BaseModel):
    text: str


def prompt(question: str) -> str:
    return question


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tiers": []}, "tiers is empty"),
        ({"tiers": "openai/gpt-4o-mini"}, "list of tiers"),
        ({"tiers": ["gpt-4o-mini"]}, "must be 'provider/model'"),
        ({"tiers": ["mistral/large"]}, "unknown provider 'mistral'"),
        ({"tiers": ["openai/gpt-4o", "openai/gpt-4o"]}, "duplicate tier name 'openai/gpt-4o'"),
        ({"tiers": [42]}, "got int"),
        ({"tiers": ["compatible/llama3"]}, "needs base_url"),
        ({"tiers": [Tier("openai/gpt-4o", max_reasks=-1)]}, "max_reasks"),
        ({"tiers": [Tier("openai/gpt-4o", timeout=0)]}, "timeout"),
        ({"tiers": [Tier("openai/gpt-4o", fallbacks=["nope"])]}, r"fallbacks\[0\]"),
        ({"response_model": 42}, "not a type pydantic can validate"),
        ({"response_model": Answer(text="x")}, "not a type pydantic can validate"),
        ({"on": "ValidationError"}, "on must be an exception type"),
        ({"on": ()}, "on must be an exception type"),
        ({"on": (ValueError, 3)}, "on must be an exception type"),
        ({"retry": {"attempts": 3}}, "retry must be a Retry"),
        ({"on_provider_exhausted": "ignore"}, "on_provider_exhausted"),
        ({"adaptive": "yes"}, r"adaptive must be True, False or an AdaptiveStart"),
    ],
)
def test_configuration_mistakes_are_named_at_decoration(
    kwargs: dict[str, Any], message: str
) -> None:
    settings: dict[str, Any] = {"tiers": ["openai/gpt-4o-mini"], "response_model": Answer}
    settings.update(kwargs)
    with pytest.raises(ConfigurationError, match=message):
        escalating(**settings)


def test_a_client_of_the_wrong_provider_or_flavour_is_refused() -> None:
    sync_client = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9")
    with pytest.raises(ConfigurationError, match="needs an anthropic client"):
        escalating(
            tiers=[Tier("anthropic/claude-haiku-4-5", client=sync_client)], response_model=Answer
        )
    decorate = escalating(
        tiers=[Tier("openai/gpt-4o-mini", client=sync_client)], response_model=Answer
    )
    with pytest.raises(ConfigurationError, match="give it an async client"):

        @decorate
        async def ask(question: str) -> str:
            return question

    async_client = anthropic.AsyncAnthropic(api_key="k", base_url="http://127.0.0.1:9")
    decorate = escalating(
        tiers=[Tier("anthropic/claude-haiku-4-5", client=async_client)], response_model=Answer
    )
    with pytest.raises(ConfigurationError, match="give it a sync client"):
        decorate(prompt)


def test_bad_retry_and_price_values_are_named() -> None:
    with pytest.raises(ConfigurationError, match=r"Retry\.attempts"):
        Retry(attempts=0)
    with pytest.raises(ValueError, match=r"Price\.output"):
        Price(input=1, output=-1)


def test_the_decorated_function_keeps_its_face() -> None:
    @escalating(tiers=["openai/gpt-4o-mini"], response_model=Answer)
    def ask(question: str, *, tone: str = "plain") -> str:
        """Ask a question."""
        return question

    @escalating(tiers=["openai/gpt-4o-mini"], response_model=Answer)
    async def ask_async(question: str) -> str:
        """Ask, asynchronously."""
        return question

    assert ask.__name__ == "ask" and ask.__doc__ == "Ask a question."
    assert str(inspect.signature(ask)) == "(question: 'str', *, tone: 'str' = 'plain') -> 'str'"
    assert not inspect.iscoroutinefunction(ask)
    assert ask_async.__name__ == "ask_async" and inspect.iscoroutinefunction(ask_async)


def test_methods_are_decorated_and_bound(server: ProviderServer) -> None:
    server.script("gpt-4o-mini", Reply(data={"text": "hi from Bot"}))
    tier = Tier("openai/gpt-4o-mini", base_url=server.openai_base_url, api_key="k")

    class Bot:
        name = "Bot"

        @escalating(tiers=[tier], response_model=Answer)
        def greet(self, who: str) -> str:
            return f"{self.name} greets {who}"

    answer = Bot().greet("Ada")
    assert answer == Answer(text="hi from Bot")
    assert receipt_of(answer).function.endswith("Bot.greet")
    assert server.requests_for("gpt-4o-mini")[0].last_user_text == "Bot greets Ada"


def test_the_public_surface_is_what_the_package_exports() -> None:
    # As httpx does: every public name the package holds is in __all__, and the other way
    # round, so nothing is exported by accident and nothing exported is missing.
    public = {
        name
        for name, value in vars(escalate).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public | {"__version__"} == set(escalate.__all__)
    for name in escalate.__all__:
        assert getattr(escalate, name).__doc__, f"{name} has no docstring"


@pytest.mark.parametrize(
    ("create_kwargs", "named", "instead"),
    [
        ({"max_retries": 3}, "'max_retries'", r"max_retries -> Tier\(max_reasks=\.\.\.\)"),
        ({"stream": True}, "'stream'", r"stream -> Tier\(stream=True\)"),
        ({"model": "gpt-4o"}, "'model'", r"model -> Tier\('provider/model'\)"),
        ({"response_model": Answer}, "'response_model'", r"@escalating\(response_model"),
        ({"messages": []}, "'messages'", "what the prompt function returns"),
        ({"hooks": object()}, "'hooks'", r"@escalating\(hooks="),
    ],
)
def test_create_kwargs_escalate_owns_are_refused_naming_the_replacement(
    create_kwargs: dict[str, Any], named: str, instead: str
) -> None:
    tier = Tier("openai/gpt-4o-mini", create_kwargs={"temperature": 0, **create_kwargs})
    with pytest.raises(ConfigurationError) as caught:
        escalating(tiers=[tier], response_model=Answer)
    message = str(caught.value)
    assert message.startswith("tiers[0]: tier 'openai/gpt-4o-mini' create_kwargs may not set")
    assert named in message
    assert re.search(instead, message)
    assert "temperature" not in message


def test_every_owned_create_kwarg_is_named_at_once_and_fallbacks_are_checked() -> None:
    fallback = Tier("openai/gpt-4o-mini-eu", create_kwargs={"stream": True, "max_retries": 1})
    tier = Tier("openai/gpt-4o-mini", fallbacks=[fallback])
    with pytest.raises(ConfigurationError) as caught:
        escalating(tiers=[tier], response_model=Answer)
    message = str(caught.value)
    assert message.startswith("tiers[0].fallbacks[0]: ")
    assert "'stream', 'max_retries'" in message
    assert "stream -> Tier(stream=True); max_retries -> Tier(max_reasks=...)" in message


def test_create_kwargs_escalate_does_not_own_still_reach_the_request(
    server: ProviderServer,
) -> None:
    tier = Tier(
        "openai/gpt-4o-mini",
        base_url=server.openai_base_url,
        api_key="sk-test",
        create_kwargs={"temperature": 0.25, "max_tokens": 64},
    )
    server.script("gpt-4o-mini", Reply(data={"text": "hi"}))

    @escalating(tiers=[tier], response_model=Answer)
    def ask(question: str) -> str:
        return question

    assert ask("hello").text == "hi"
    body = server.requests_for("gpt-4o-mini")[0].body
    assert (body["temperature"], body["max_tokens"]) == (0.25, 64)
