"""escalate's pytest plugin, registered by the package's ``pytest11`` entry point.

Cassettes are pytest-recording's (and so vcrpy's): mark a test ``@pytest.mark.vcr`` and
choose the record mode with pytest-recording's ``--record-mode`` (default ``none``:
replay only). For every cassette this plugin

- matches LLM requests on what decides the answer (:data:`MATCHED_FIELDS`: model,
  messages, system, tools, tool choice, response format, logprobs) and the URL path,
  never on the URL alone, and never on the host, so a cassette recorded against one
  server (a local one, a proxy) replays against another; other requests match as vcrpy
  matches them by default;
- removes API keys and auth headers from requests and responses, and any known key from
  URLs and bodies, before anything is written, and stores compressed bodies as text;
- makes a cassette miss fail the test with vcrpy's explanation first, then the request
  that missed (model and last user message, never a key);
- with the environment variable ``CI`` set, makes every cassette replay-only unless
  ``--record-mode`` is given on the command line (a ``record_mode`` in ``vcr_config`` or
  a marker does not count);
- replaying a cassette without keys in the environment, sets placeholder
  ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` so SDK clients can be built.

Every test gets circuit breakers of its own (all closed at its start), so a deployment
that one test made fail is not skipped in the next; see :func:`escalate.testing.breakers`.

It also adds ``--escalate-block-providers`` (ini: ``escalate_block_providers = true``):
every real provider request raises ``ProviderCallBlocked``, except in tests that use a
cassette. Set the ini option ``escalate_cassettes = false`` to leave pytest-recording's
configuration alone.

Plain vcrpy users get the same cassette behaviour from :func:`configure_vcr`.

Its rooms: request matching is :mod:`escalate.testing._matching`, cassette scrubbing and
:func:`configure_vcr` are :mod:`escalate.testing._scrubbing`; this module holds the hooks,
options, fixtures and cassette-miss messages.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Generator, Iterator, Mapping
from typing import Any
from urllib.parse import urlparse

import pytest

from escalate._failures import cassette_miss
from escalate.testing._breakers import breakers
from escalate.testing._matching import MATCHED_FIELDS, MATCHER, _brief, _llm_body, llm_request
from escalate.testing._override import block_providers
from escalate.testing._scrubbing import (
    _scrub_text,
    _secrets,
    configure_vcr,
    scrub_request,
    scrub_response,
)

# The plugin module has always offered the cassette helpers: keep them importable from it.
__all__ = [
    "MATCHED_FIELDS",
    "MATCHER",
    "configure_vcr",
    "llm_request",
    "scrub_request",
    "scrub_response",
]

_PLACEHOLDER_KEY = "escalate-cassette-replay-placeholder-key"
_KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, Mapping):
                if isinstance(block.get("text"), str):
                    parts.append(block["text"])
                elif "content" in block:
                    parts.append(_text_of(block["content"]))
        return "\n".join(p for p in parts if p)
    return ""


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def _cli_record_mode(config: pytest.Config) -> str | None:
    try:
        mode = config.getoption("--record-mode")
    except ValueError:  # pytest-recording is not installed
        return None
    return mode if isinstance(mode, str) else None


def _miss_message(miss: BaseException, config: pytest.Config) -> str:
    lines = [str(miss), "", "escalate: the request that missed the cassette"]
    request = getattr(miss, "failed_request", None)
    body = _llm_body(request) if request is not None else None
    if request is not None:
        lines.append(f"  request: {request.method} {urlparse(request.uri).path}")
    if body is not None:
        messages = body.get("messages")
        users = [m for m in messages or () if isinstance(m, Mapping) and m.get("role") == "user"]
        last_user = _text_of(users[-1].get("content")) if users else ""
        lines.append(f"  model: {body.get('model')}")
        lines.append(f"  last user message: {_brief(last_user, 300)}")
    lines.append(
        "  It failed the test rather than count as a provider failure or a reason to "
        "escalate. To record it, run once with --record-mode=once (a new cassette) or "
        "--record-mode=rewrite (record this test's cassette again), review the YAML, and "
        "commit it."
    )
    if _ci() and _cli_record_mode(config) is None:
        lines.append("  CI is set: cassettes are replay-only unless --record-mode is given.")
    return _scrub_text("\n".join(lines), _secrets(), urls=True)


def _reraise_misses(config: pytest.Config) -> Generator[None, object, object]:
    try:
        return (yield)
    except Exception as error:
        miss = cassette_miss(error)
        if miss is None:
            raise
        raise pytest.fail.Exception(_miss_message(miss, config), pytrace=False) from None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    """A cassette miss in a fixture fails with vcrpy's explanation first."""
    return (yield from _reraise_misses(item.config))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """A cassette miss in a test fails with vcrpy's explanation first."""
    return (yield from _reraise_misses(item.config))


# --- options, configuration and the per-test guard -------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    # A test writes receipts to a store only when it configures one itself.
    from escalate._storing import ignore_environment

    ignore_environment("under pytest, a test configures its own store")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("escalate")
    group.addoption(
        "--escalate-block-providers",
        action="store_true",
        default=False,
        help="escalate: make every real LLM provider request fail (ProviderCallBlocked), "
        "except in tests that use a cassette.",
    )
    parser.addini(
        "escalate_block_providers",
        type="bool",
        default=False,
        help="escalate: as --escalate-block-providers, for every run.",
    )
    parser.addini(
        "escalate_cassettes",
        type="bool",
        default=True,
        help="escalate: configure pytest-recording cassettes for LLM requests (matching, "
        "key scrubbing, replay-only in CI). Default: true.",
    )


@pytest.hookimpl(optionalhook=True)
def pytest_recording_configure(config: pytest.Config, vcr: Any) -> None:
    """pytest-recording built the VCR of a test's cassette: give it escalate's behaviour."""
    if config.getini("escalate_cassettes"):
        configure_vcr(vcr)


def _active_cassette(request: pytest.FixtureRequest) -> Any:
    config = request.config
    if not config.getini("escalate_cassettes"):
        return None
    if not config.pluginmanager.has_plugin("recording"):
        return None
    if request.node.get_closest_marker("vcr") is None:
        return None
    return request.getfixturevalue("vcr")


@contextlib.contextmanager
def _placeholder_keys() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name in _KEY_VARIABLES:
            if not os.environ.get(name):
                patch.setenv(name, _PLACEHOLDER_KEY)
        yield


@pytest.fixture(autouse=True)
def _escalate_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """Per test: circuit breakers of its own, replay-only cassettes in CI, placeholder keys
    for replays, and the suite-wide provider block for tests without a cassette."""
    config = request.config
    cassette = _active_cassette(request)
    with contextlib.ExitStack() as stack:
        stack.enter_context(breakers())
        if cassette is not None:
            if _ci() and _cli_record_mode(config) is None:
                cassette.record_mode = importlib.import_module("vcr.record_mode").RecordMode.NONE
            if cassette.write_protected:
                stack.enter_context(_placeholder_keys())
        elif config.getoption("--escalate-block-providers") or config.getini(
            "escalate_block_providers"
        ):
            stack.enter_context(
                block_providers("escalate's --escalate-block-providers (or ini option)")
            )
        yield
