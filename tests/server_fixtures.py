"""Fixtures for the provider-server tests (a plugin: `pytest_plugins = ["tests.server_fixtures"]`):
SDK clients pointed at the session's server (`server` and `_server` come from conftest.py),
and instructor's error logs kept quiet."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import anthropic
import openai
import pytest

from escalate.testing._server import ProviderServer


@pytest.fixture(autouse=True)
def quiet_instructor() -> Iterator[None]:
    # instructor logs at ERROR on every exhausted call; these tests provoke that on purpose.
    logger = logging.getLogger("instructor")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


@pytest.fixture(scope="module")
def oai(_server: ProviderServer) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(
        base_url=_server.openai_base_url, api_key="test-key", max_retries=0, timeout=5
    )
    yield client
    client.close()


@pytest.fixture(scope="module")
def claude(_server: ProviderServer) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(
        base_url=_server.anthropic_base_url, api_key="test-key", max_retries=0, timeout=5
    )
    yield client
    client.close()


@pytest.fixture
async def aoai(_server: ProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=_server.openai_base_url, api_key="test-key", max_retries=0, timeout=5
    ) as client:
        yield client


@pytest.fixture
async def aclaude(_server: ProviderServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=_server.anthropic_base_url, api_key="test-key", max_retries=0, timeout=5
    ) as client:
        yield client
