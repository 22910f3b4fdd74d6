"""Records this example's cassettes against escalate's local provider server, so that no
key and no network are needed. To record against the real provider instead, delete this
file, set ``OPENAI_API_KEY`` and run ``pytest --record-mode=once``. Replaying needs none
of it: with no ``--record-mode``, this fixture does nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from escalate.testing import ProviderServer, Reply, Request


def _cheap(request: Request) -> Reply:
    if "Müller" in request.last_user_text:  # a cheap model's usual slip: a symbol, no code
        return Reply(data={"vendor": "Müller GmbH", "total": 98.2, "currency": "€"})
    return Reply(data={"vendor": "ACME Corp.", "total": 1204.5, "currency": "EUR"})


def _strong(request: Request) -> Reply:
    return Reply(data={"vendor": "Müller GmbH", "total": 98.2, "currency": "EUR"})


@pytest.fixture(scope="session", autouse=True)
def local_provider(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.config.getoption("--record-mode") in (None, "none"):
        yield
        return
    with ProviderServer() as server, pytest.MonkeyPatch.context() as env:
        server.respond("gpt-4o-mini", _cheap)
        server.respond("gpt-4o", _strong)
        env.setenv("OPENAI_BASE_URL", server.openai_base_url)
        env.setenv("OPENAI_API_KEY", "sk-example-recording-key-0123456789abcdef")
        yield
