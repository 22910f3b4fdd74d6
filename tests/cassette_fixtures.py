"""The cassette tests' fixtures (a plugin: ``pytest_plugins = ("pytester",
"tests.cassette_fixtures")``, never imported directly, so pytest can rewrite it): pytester
runs with a clean environment and the asyncio settings.

The key-wanting ``server`` stays in tests/test_cassettes.py: a plugin's fixture would lose
to tests/conftest.py's ``server``.
"""

from __future__ import annotations

import pytest

from tests.cassette_support import INI


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CI", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def kit(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    return pytester
