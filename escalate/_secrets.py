"""Secrets never leave: the keys a deployment knows, and their removal from every text that
escalate hands on (receipts, events, raised errors and their chains, its log records).

A key can come from an argument (``Tier(api_key=...)``), from a user's client, from the
SDK's environment variable, or from a base URL's query string (``?key=...``). Every source
is collected when a deployment is built, into one process-wide set, so that a text is
cleaned of every key escalate has seen, whichever deployment produced it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["ENV_KEYS", "known", "remember_secrets", "scrub", "scrub_error", "secrets_of"]

ENV_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY")
"""The environment variables the SDKs read keys from."""

_REDACTED = "[redacted]"
_MIN_LENGTH = 6  # shorter values ("k", "unused") would redact ordinary words
_QUERY_KEYS = {"key", "api_key", "api-key", "apikey", "token", "access_token", "auth", "code"}

_lock = threading.Lock()
_known: frozenset[str] = frozenset()
_longest_first: tuple[str, ...] = ()


def secrets_of(*, api_key: str | None, client: Any = None, base_url: str | None = None) -> set[str]:
    """Every key a deployment may send: its own, its client's, the environment's and any
    in its base URL (query values under key-like names, and a URL's password)."""
    found = {api_key, _client_key(client), *(os.environ.get(name) for name in ENV_KEYS)}
    for url in (base_url, getattr(client, "base_url", None)):
        found |= _url_secrets(str(url) if url is not None else None)
    return {s for s in found if isinstance(s, str) and len(s) >= _MIN_LENGTH}


def remember_secrets(secrets: Iterable[str]) -> None:
    """Add ``secrets`` to the process-wide set that :func:`scrub` removes."""
    global _known, _longest_first
    new = frozenset(secrets) - _known
    if new:
        with _lock:
            _known = _known | new
            # Longer keys first, so a key that contains another is replaced whole.
            _longest_first = tuple(sorted(_known, key=len, reverse=True))


def known() -> frozenset[str]:
    return _known


def scrub(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with every known secret (and every one in ``secrets``) replaced."""
    extra = () if secrets is None else tuple(s for s in secrets if s not in _known)
    for secret in (*_longest_first, *sorted(extra, key=len, reverse=True)):
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return text


def scrub_error(error: BaseException) -> None:
    """Clean an exception and its chain in place: the same objects, of the same types,
    whose text, ``message`` and ``body`` (an SDK error echoing the request) hold no key,
    so that ``str``, ``repr`` and a formatted traceback show none."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        _scrub_one(current)
        current = current.__cause__ or current.__context__


def _scrub_one(error: BaseException) -> None:
    if not _known:
        return
    try:
        error.args = tuple(scrub(a) if isinstance(a, str) else a for a in error.args)
        for name in ("message", "body"):
            value = getattr(error, name, None)
            if value is not None:
                setattr(error, name, _scrub_value(value))
        notes = getattr(error, "__notes__", None)
        if isinstance(notes, list):
            error.__notes__ = [scrub(n) if isinstance(n, str) else n for n in notes]
    except (AttributeError, TypeError):  # a read-only attribute: leave it
        pass


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_value(v) for v in value]
    return value


def _client_key(client: Any) -> str | None:
    key = getattr(client, "api_key", None)
    return key if isinstance(key, str) else None


def _url_secrets(url: str | None) -> set[str]:
    if not url:
        return set()
    parts = urlsplit(url)
    found = {value for name, value in parse_qsl(parts.query) if name.lower() in _QUERY_KEYS}
    if parts.password:
        found.add(parts.password)
    return found


class _ScrubRecords(logging.Filter):
    """Removes known keys from escalate's own log records (message, arguments, and the
    formatted exception, which a handler would otherwise print with the SDK's text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _known:
            return True
        # The formatted message: its arguments may be exceptions whose text holds a key.
        record.msg, record.args = scrub(record.getMessage()), ()
        if record.exc_info and record.exc_info[1] is not None:
            scrub_error(record.exc_info[1])
        return True


def install_log_filter(logger: logging.Logger) -> None:
    """Scrub ``logger``'s records (escalate's own logger, and instructor's)."""
    if not any(isinstance(f, _ScrubRecords) for f in logger.filters):
        logger.addFilter(_ScrubRecords())


install_log_filter(logging.getLogger("escalate"))
