"""Cassette scrubbing: no key, auth header or cookie reaches a cassette's YAML.

Requests and responses lose credential headers (and any header holding a key), the
values of query parameters named like keys, and every known key from URLs and bodies,
before anything is written; compressed bodies are stored as text, so a key inside one
cannot hide. A key is known when escalate's core knows it (every deployment's keys, from
every source: :mod:`escalate._secrets`), when a recorded request sent it (a header value,
a URL query value), or when it is the value of an environment variable named like a key.

:func:`configure_vcr` gives a ``vcr.VCR`` all of this, with escalate's request matching;
the pytest plugin applies it to every pytest-recording cassette.
"""

from __future__ import annotations

import copy
import importlib
import os
import re
import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

from escalate._secrets import known
from escalate.testing._matching import MATCHER, llm_request

__all__ = ["configure_vcr", "scrub_request", "scrub_response"]

_MATCH_ON = ("method", MATCHER)
_REDACTED = "[redacted]"


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
    """Every key this process knows of, longest first: the core's (every deployment's keys,
    from every source), keys sent in recorded requests, and the values of environment
    variables named like keys."""
    found = {
        value
        for name, value in os.environ.items()
        if _SECRET_VARIABLE.search(name) and len(value) >= 12
    }
    found |= known()  # one notion of "a key escalate knows", shared with receipts and errors
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
