"""Fixtures shared by the suite: one local provider server per session, reset per test,
and a `face` parameter so every behaviour is tested through the sync and the async face."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from escalate import Retry, Tier, escalating
from escalate.testing._server import ProviderServer

# Retries fast enough for a test suite; Retry-After from the server still wins.
FAST_RETRY = Retry(attempts=3, initial=0.001, max=0.01, jitter=0)
KEY = "sk-test-SECRET-4f9c2e7a1b"


@pytest.fixture(scope="session")
def _server() -> Iterator[ProviderServer]:
    with ProviderServer() as server:
        yield server


@pytest.fixture
def server(_server: ProviderServer) -> Iterator[ProviderServer]:
    _server.reset()
    yield _server
    _server.reset()


@pytest.fixture
def openai_tier(server: ProviderServer) -> Callable[..., Tier]:
    def make(model: str = "gpt-4o-mini", **kwargs: Any) -> Tier:
        kwargs.setdefault("api_key", KEY)
        return Tier(f"openai/{model}", base_url=server.openai_base_url, **kwargs)

    return make


@pytest.fixture
def anthropic_tier(server: ProviderServer) -> Callable[..., Tier]:
    def make(model: str = "claude-sonnet-4-5", **kwargs: Any) -> Tier:
        kwargs.setdefault("api_key", KEY)
        return Tier(f"anthropic/{model}", base_url=server.anthropic_base_url, **kwargs)

    return make


@pytest.fixture(params=["sync", "async"])
def face(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def build(face: str) -> Callable[..., Callable[..., Any]]:
    """build(**escalating_kwargs) -> a plain callable running the decorated prompt through
    the face under test (the async one by asyncio.run), so one test serves both."""

    def make(prompt: Callable[..., Any] | None = None, **kwargs: Any) -> Callable[..., Any]:
        kwargs.setdefault("retry", FAST_RETRY)
        if face == "sync":
            decorated = escalating(**kwargs)(prompt or _sync_prompt)
            assert not inspect.iscoroutinefunction(decorated)
            return decorated  # type: ignore[no-any-return]
        decorated = escalating(**kwargs)(_as_async(prompt) if prompt else _async_prompt)
        assert inspect.iscoroutinefunction(decorated)
        return lambda *args, **kw: asyncio.run(decorated(*args, **kw))

    return make


def _sync_prompt(text: str) -> str:
    return f"Extract the invoice in: {text}"


async def _async_prompt(text: str) -> str:
    return f"Extract the invoice in: {text}"


def _as_async(prompt: Callable[..., Any]) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return prompt(*args, **kwargs)

    wrapper.__qualname__ = prompt.__qualname__
    return wrapper
