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
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import json
import os
import re
import threading
from collections.abc import Generator, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import pytest

from escalate._failures import cassette_miss
from escalate.testing._breakers import breakers
from escalate.testing._override import block_providers

__all__ = [
    "MATCHED_FIELDS",
    "MATCHER",
    "configure_vcr",
    "llm_request",
    "scrub_request",
    "scrub_response",
]

MATCHER = "llm_request"
"""The name escalate's matcher is registered under; keep it in a ``match_on`` of your own."""

MATCHED_FIELDS = (
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "response_format",
    "logprobs",
    "top_logprobs",
)
"""The fields of an LLM request body that must be equal for a recorded answer to replay."""

_MATCH_ON = ("method", MATCHER)
_REDACTED = "[redacted]"
_PLACEHOLDER_KEY = "escalate-cassette-replay-placeholder-key"
_KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")


# --- matching ------------------------------------------------------------------------------


def _llm_body(request: Any) -> dict[str, Any] | None:
    """The JSON body of an LLM request (one with a model or messages), else None."""
    if getattr(request, "method", None) != "POST":
        return None
    body = getattr(request, "body", None)
    if hasattr(body, "read"):
        return None
    if isinstance(body, (bytes, bytearray)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(body, str):
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if isinstance(parsed, dict) and ("model" in parsed or "messages" in parsed):
        return parsed
    return None


def _brief(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _difference(new: Mapping[str, Any], recorded: Mapping[str, Any], fields: list[str]) -> str:
    lines = []
    for name in fields:
        mine, theirs = new.get(name), recorded.get(name)
        if name == "messages" and isinstance(mine, list) and isinstance(theirs, list):
            index = next(
                (i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b),
                min(len(mine), len(theirs)),
            )
            if index >= min(len(mine), len(theirs)):
                lines.append(f"messages: {len(theirs)} recorded, {len(mine)} in this request")
                continue
            lines.append(f"messages[{index}] differs:")
            lines.append(f"  recorded:     {_brief(theirs[index])}")
            lines.append(f"  this request: {_brief(mine[index])}")
        else:
            lines.append(f"{name}: recorded {_brief(theirs)}, this request {_brief(mine)}")
    return "\n".join(lines)


_URL_PARTS = ("scheme", "host", "port", "path", "query")


def llm_request(new: Any, recorded: Any) -> None:
    """vcrpy matcher: raise ``AssertionError`` (saying what differs) unless ``new`` may
    replay ``recorded``.

    Two LLM requests (POSTs whose JSON body has a model or messages) match when their URL
    paths and every field in :data:`MATCHED_FIELDS` are equal: headers, host, port and
    query never count, so a changed prompt never replays an old answer and a recording
    made against one server replays against another. Other requests match on scheme,
    host, port, path and query, as vcrpy's default ``match_on`` does.
    """
    new_body, recorded_body = _llm_body(new), _llm_body(recorded)
    if new_body is None or recorded_body is None:
        for part in _URL_PARTS:
            if getattr(new, part) != getattr(recorded, part):
                raise AssertionError(
                    f"{part}: recorded {getattr(recorded, part)!r}, "
                    f"this request {getattr(new, part)!r}"
                )
        return
    if new.path != recorded.path:
        raise AssertionError(f"path: recorded {recorded.path!r}, this request {new.path!r}")
    differing = [f for f in MATCHED_FIELDS if new_body.get(f) != recorded_body.get(f)]
    if differing:
        raise AssertionError(_difference(new_body, recorded_body, differing))


# --- scrubbing -----------------------------------------------------------------------------

# Header names that carry credentials (or who you are); rate-limit headers that count
# "tokens" are left alone.
_SECRET_HEADER = re.compile(
    r"auth|key|secret|passw|cookie|session|credential|signature|token|organization|project",
    re.IGNORECASE,
)
_HARMLESS_HEADER = re.compile(r"ratelimit", re.IGNORECASE)
_SECRET_QUERY = re.compile(
    r"^(key|api[-_]?key|.*token|.*secret|sig|signature|password|code)$", re.IGNORECASE
)
_SECRET_VARIABLE = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)
# Things shaped like keys, wherever they are: OpenAI and Anthropic keys (sk-..., with a
# digit somewhere) and Google API keys.
_KEY_SHAPES = re.compile(
    r"\bsk-(?=[A-Za-z0-9_\-]*\d)[A-Za-z0-9_\-]{20,}"  # OpenAI, Anthropic
    r"|\bAIza[A-Za-z0-9_\-]{30,}"  # Google
)
# In a header, whatever follows Bearer is a credential too.
_HEADER_SHAPES = re.compile(r"\bBearer\s+\S{8,}", re.IGNORECASE)
_QUERY_SECRET_IN_TEXT = re.compile(
    r"([?&](?:key|api[-_]?key|[a-z_]*token|sig|signature)=)[^&\s#'\"]+", re.IGNORECASE
)
_MIN_SECRET = 8

_seen_secrets: set[str] = set()
_seen_lock = threading.Lock()


def _is_secret_header(name: str) -> bool:
    return bool(_SECRET_HEADER.search(name)) and not _HARMLESS_HEADER.search(name)


def _remember(value: str) -> None:
    for part in (value, value.split(" ", 1)[-1]):  # "Bearer sk-..." and "sk-..."
        part = part.strip()
        if len(part) >= _MIN_SECRET:
            with _seen_lock:
                _seen_secrets.add(part)


def _secrets() -> list[str]:
    """Every key this process knows of, longest first: keys sent in recorded requests and
    the values of environment variables named like keys."""
    found = {
        value
        for name, value in os.environ.items()
        if _SECRET_VARIABLE.search(name) and len(value) >= 12
    }
    with _seen_lock:
        found |= _seen_secrets
    return sorted(found, key=len, reverse=True)


def _scrub_text(text: str, secrets: list[str], *, urls: bool = False) -> str:
    """``text`` without known keys and key-shaped strings; with ``urls``, without the
    values of query parameters named like keys either."""
    for secret in secrets:
        text = text.replace(secret, _REDACTED)
    text = _KEY_SHAPES.sub(_REDACTED, text)
    if urls:
        text = _QUERY_SECRET_IN_TEXT.sub(lambda m: m.group(1) + _REDACTED, text)
    return text


def _scrub_body(body: Any, secrets: list[str]) -> Any:
    if isinstance(body, str):
        return _scrub_text(body, secrets)
    if isinstance(body, (bytes, bytearray)):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            data = bytes(body)
            for secret in secrets:
                data = data.replace(secret.encode(), _REDACTED.encode())
            return data
        scrubbed = _scrub_text(text, secrets)
        return body if scrubbed == text else scrubbed.encode("utf-8")
    return body


def _header_values(value: Any) -> list[str]:
    values = value if isinstance(value, (list, tuple)) else [value]
    return [v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in values]


def _holds_secret(values: list[str], secrets: list[str]) -> bool:
    return any(
        any(secret in value for secret in secrets)
        or _KEY_SHAPES.search(value)
        or _HEADER_SHAPES.search(value)
        for value in values
    )


def _scrub_uri(uri: str, secrets: list[str]) -> str:
    parts = urlparse(uri)
    if parts.query:
        query = parse_qsl(parts.query, keep_blank_values=True)
        kept = [(k, v) for k, v in query if not _SECRET_QUERY.match(k)]
        parts = parts._replace(query=urlencode(kept))
    return _scrub_text(urlunparse(parts), secrets, urls=True)


def scrub_request(request: Any) -> Any:
    """A vcrpy ``before_record_request`` filter: remove credential headers (``authorization``,
    ``x-api-key``, ``api-key``, cookies, tokens, ...), and any header, query parameter or
    body text holding a key, from a request. Keys it removes are remembered, so that
    responses echoing them are cleaned too."""
    headers = request.headers
    for name, value in headers.items():
        if _is_secret_header(name):
            for text in _header_values(value):
                _remember(text)
    for name, value in parse_qsl(urlparse(request.uri).query, keep_blank_values=True):
        if _SECRET_QUERY.match(name):
            _remember(value)
    secrets = _secrets()
    request.headers = {
        name: value
        for name, value in headers.items()
        if not _is_secret_header(name) and not _holds_secret(_header_values(value), secrets)
    }
    request.uri = _scrub_uri(request.uri, secrets)
    body = request.body
    if isinstance(body, (str, bytes, bytearray)):
        scrubbed = _scrub_body(body, secrets)
        if scrubbed != body:
            request.body = scrubbed
    return request


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """A vcrpy ``before_record_response`` filter: decompress the body (so it is stored as
    text), drop credential and cookie headers, and remove any known key from the rest."""
    filters = importlib.import_module("vcr.filters")
    response = filters.decode_response(response)
    secrets = _secrets()
    headers = response.get("headers") or {}
    response["headers"] = {
        name: value
        for name, value in headers.items()
        if not _is_secret_header(name) and not _holds_secret(_header_values(value), secrets)
    }
    body = response.get("body")
    if isinstance(body, dict) and "string" in body:
        body["string"] = _scrub_body(body["string"], secrets)
    return response


def _chain(functions: Any, last: Any) -> Any:
    """One vcrpy filter that runs ``functions`` (None, one, or several), then ``last``."""
    if functions is None:
        return last
    before = list(functions) if isinstance(functions, (list, tuple)) else [functions]
    return [*before, last]


class _ScrubbingPersister:
    """Wraps a vcrpy persister: whatever the cassette's configuration, every request and
    response is scrubbed (and decompressed) on its way to disk."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def load_cassette(self, cassette_path: Any, serializer: Any) -> Any:
        return self.inner.load_cassette(cassette_path, serializer)

    def save_cassette(self, cassette_path: Any, cassette_dict: Any, serializer: Any) -> None:
        requests = [scrub_request(copy.deepcopy(r)) for r in cassette_dict["requests"]]
        responses = [scrub_response(copy.deepcopy(r)) for r in cassette_dict["responses"]]
        cleaned = {**cassette_dict, "requests": requests, "responses": responses}
        self.inner.save_cassette(cassette_path, cleaned, serializer=serializer)


def configure_vcr(vcr: Any) -> Any:
    """Give a ``vcr.VCR`` escalate's cassette behaviour, and return it.

    Registers :func:`llm_request` as the matcher ``"llm_request"`` and matches on
    ``("method", "llm_request")``; runs :func:`scrub_request` and
    :func:`scrub_response` after any filters already configured; stores compressed
    bodies decoded; and scrubs every interaction again as it is saved. The pytest plugin
    does this for every pytest-recording cassette; use it with plain vcrpy::

        my_vcr = configure_vcr(vcr.VCR(cassette_library_dir="tests/cassettes"))

    Arguments given to ``use_cassette`` (or pytest-recording's ``vcr_config``) still win;
    a ``match_on`` of your own should include ``"llm_request"``.
    """
    vcr.register_matcher(MATCHER, llm_request)
    vcr.match_on = _MATCH_ON
    if not isinstance(vcr.persister, _ScrubbingPersister):
        vcr.before_record_request = _chain(vcr.before_record_request, scrub_request)
        vcr.before_record_response = _chain(vcr.before_record_response, scrub_response)
        vcr.register_persister(_ScrubbingPersister(vcr.persister))
    vcr.decode_compressed_response = True
    return vcr


# --- cassette misses -----------------------------------------------------------------------


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
