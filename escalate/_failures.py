"""Failure classification: what an exception from a request means, decided in one place.

A request fails at the provider (transient: retried, then sideways), with a bad answer
(quality: up a tier), or otherwise (passed through unless ``on=`` matches it). The real
deployments (:func:`classify`), the testing kit's fake tiers (:data:`TRANSIENT_STATUS`,
:func:`validation_reason`, :func:`unanswered_cost`) and the pytest plugin
(:func:`cassette_miss`) all read failures through this module.

No SDK is imported here: an SDK's exception can only exist once that SDK is loaded, so the
SDK modules are looked up in ``sys.modules`` and skipped when absent.
"""

from __future__ import annotations

import email.utils
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import ModuleType
from typing import Any

from escalate._outcomes import FailureKind
from escalate._providers import SDKS
from escalate._receipt import AttemptOutcome, Trigger

__all__ = [
    "TRANSIENT_STATUS",
    "Classified",
    "cassette_miss",
    "classify",
    "is_bad_request_body",
    "retry_after",
    "short",
    "unanswered_cost",
    "validation_reason",
]

TRANSIENT_STATUS: dict[int, Trigger] = {
    408: "timeout",
    409: "conflict",
    429: "rate_limit",
    529: "overloaded",
}
"""HTTP statuses that are the provider's passing trouble (as are all 5xx), by trigger."""

_MISS = "CannotOverwriteExistingCassetteException"


@dataclass(frozen=True)
class Classified:
    """What a failed request came to: the failure's kind and how its attempt is stamped."""

    kind: FailureKind
    outcome: AttemptOutcome
    trigger: Trigger | None
    """The attempt's trigger; ``None`` for an exception no trigger matches."""
    reason: str
    cause: BaseException
    status: int | None = None
    retry_after: float | None = None


def classify(error: BaseException) -> Classified:
    """Tell a provider failure from a bad answer from anything else.

    Raises the cassette miss behind ``error`` if there is one: a test asked for a request
    its cassette does not hold, which is neither a provider failure nor a bad answer, so
    it is never retried or escalated.
    """
    if (miss := cassette_miss(error)) is not None:
        raise miss
    retry_error, incomplete = _instructor_errors()
    cause = error
    if isinstance(error, retry_error) and error.__cause__ is not None:
        cause = error.__cause__
    provider = _provider_failure(error, cause)
    if provider is not None:
        return provider
    if _is_validation_error(cause):  # a stream's final answer, validated by instructor
        return _rejected("validation", validation_reason(cause), cause)
    failed_attempts = (
        getattr(error, "failed_attempts", None) if isinstance(error, retry_error) else None
    )
    if failed_attempts:  # instructor's re-asks ran out on answers that did not validate
        return _rejected("validation", validation_reason(failed_attempts[-1].exception), cause)
    if isinstance(cause, incomplete):
        return _rejected("truncated", "the output was cut off at the token limit", cause)
    reason = short(f"{type(cause).__name__}: {cause}")
    return Classified("error", "error", None, reason, cause, getattr(cause, "status_code", None))


def _rejected(trigger: Trigger, reason: str, cause: BaseException) -> Classified:
    return Classified("quality", "rejected", trigger, reason, cause)


def _provider_failure(error: BaseException, cause: BaseException) -> Classified | None:
    found = _classify_sdk_error(cause)
    if found is None and _is_garbled_body(error, cause):
        found = ("bad_response", f"the provider sent a body that does not parse: {cause}", None)
    if found is None:
        return None
    trigger, reason, status = found
    return Classified(
        "provider", "provider_error", trigger, reason, cause, status, retry_after(cause)
    )


def _instructor_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(InstructorRetryException, IncompleteOutputException) as isinstance targets; empty
    when instructor is not loaded (then none of its exceptions can exist)."""
    if "instructor" not in sys.modules:
        return (), ()
    from instructor.core.exceptions import IncompleteOutputException, InstructorRetryException

    return (InstructorRetryException,), (IncompleteOutputException,)


def _is_validation_error(error: BaseException) -> bool:
    from pydantic import ValidationError

    return isinstance(error, ValidationError)


def _loaded_sdks() -> list[ModuleType]:
    return [module for name in SDKS if (module := sys.modules.get(name)) is not None]


def _sdk_classes(name: str) -> tuple[type[BaseException], ...]:
    """The SDKs' exception classes called ``name`` (openai and anthropic share the names)."""
    return tuple(getattr(module, name) for module in _loaded_sdks() if hasattr(module, name))


def _transport_classes(name: str) -> tuple[type[BaseException], ...]:
    """The HTTP clients' exception classes called ``name`` (httpx2, which the SDKs use, and
    httpx), from those already loaded."""
    modules = (sys.modules.get(client) for client in ("httpx2", "httpx"))
    return tuple(getattr(m, name) for m in modules if m is not None and hasattr(m, name))


def _classify_sdk_error(error: BaseException) -> tuple[Trigger, str, int | None] | None:
    """(trigger, reason, status) for a transient provider failure; None if not one."""
    if isinstance(error, _sdk_classes("APITimeoutError")):
        return "timeout", "the request timed out", None
    if isinstance(error, _sdk_classes("APIConnectionError")):
        return "connection", f"connection failed: {error}", None
    if isinstance(error, _transport_classes("TimeoutException")):
        return "timeout", "the request timed out while its body was read", None
    if isinstance(error, _transport_classes("TransportError")):
        # Reading a streamed body, the SDKs let the HTTP client's own error through
        # (a connection closed halfway: RemoteProtocolError): the provider failed.
        return "connection", f"connection failed while reading the reply: {error}", None
    if isinstance(error, _sdk_classes("APIResponseValidationError")):
        return "bad_response", f"the provider sent a body that does not parse: {error}", None
    if isinstance(error, _sdk_classes("APIStatusError")):
        status: int = getattr(error, "status_code", 0)
        if status >= 500 and is_bad_request_body(getattr(error, "body", None)):
            return None  # the request itself is wrong: it would fail the same everywhere
        if status in TRANSIENT_STATUS or status >= 500:
            trigger: Trigger = TRANSIENT_STATUS.get(status, "server_error")
            return trigger, f"HTTP {status}: {short(str(error))}", status
    return None


_BAD_REQUEST_TYPES = frozenset(
    {"invalid_request_error", "invalid_request", "bad_request", "validation_error"}
)
# A serialised FastAPI/pydantic request validation error whose location is the request body:
# ``'loc': ('body', 'response_format', 'type')`` (repr) or ``"loc": ["body", ...]`` (JSON).
_BODY_VALIDATION = re.compile(r"""['"]loc['"]\s*:\s*[(\[]\s*['"]body['"]""")


def is_bad_request_body(body: object) -> bool:
    """Whether a 5xx error body says the *request* was invalid, so that retrying it, here or
    at a fallback, would fail the same way.

    Some OpenAI-compatible servers answer a request they cannot validate with a 500:
    llama.cpp's (llama-cpp-python) wraps FastAPI's request validation error in
    ``{"error": {"type": "internal_server_error", "message": "1 validation error: {'type':
    'literal_error', 'loc': ('body', 'response_format', 'type'), ...}"}}``. Only clear signs
    count: an error ``type`` naming a bad request (``invalid_request_error``), FastAPI's own
    ``{"detail": [{"loc": [...], "msg": ...}]}``, or a message holding a validation error
    located in the request ``body``. Anything else stays a server error, and is retried.
    """
    if not isinstance(body, Mapping):
        return False
    inner = body.get("error")
    candidates = [body, inner] if isinstance(inner, Mapping) else [body]
    for candidate in candidates:
        kind = candidate.get("type")
        if isinstance(kind, str) and kind.lower() in _BAD_REQUEST_TYPES:
            return True
        detail = candidate.get("detail")
        if (
            isinstance(detail, list)
            and detail
            and all(isinstance(d, Mapping) and "loc" in d and "msg" in d for d in detail)
        ):
            return True
        message = candidate.get("message")
        if isinstance(message, str) and _BODY_VALIDATION.search(message):
            return True
    return False


def _is_garbled_body(error: BaseException, cause: BaseException) -> bool:
    """The SDK raised a JSON error on the HTTP response itself (not on the model's answer:
    instructor lists answers that failed to parse in ``failed_attempts``)."""
    return isinstance(cause, json.JSONDecodeError) and getattr(error, "failed_attempts", None) == []


def retry_after(error: BaseException) -> float | None:
    """Seconds the provider asked us to wait, from Retry-After(-ms) headers."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(float(ms) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return _seconds_until(value)


def _seconds_until(http_date: str) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(http_date) if http_date else None
    except (TypeError, ValueError):  # not a date either: no advice
        return None
    if parsed is None:
        return None
    return max((parsed - datetime.now(parsed.tzinfo)).total_seconds(), 0.0)


def cassette_miss(error: BaseException) -> BaseException | None:
    """vcrpy's CannotOverwriteExistingCassetteException, if ``error`` is or hides one.

    The one rule for a miss, shared by the deployments and the pytest plugin: the class
    is matched by name anywhere in the MRO (vcrpy need not be imported, and subclasses
    count), and it is looked for through ``__cause__``/``__context__`` chains and inside
    exception groups (a TaskGroup wraps what its tasks raised).
    """
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if any(cls.__name__ == _MISS for cls in type(current).__mro__):
            return current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None


def short(text: str, limit: int = 500) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def validation_reason(error: BaseException) -> str:
    """A validation error as a receipt's reason: ``field.path: message; ...``."""
    errors: Any = getattr(error, "errors", None)
    if callable(errors):
        try:
            items = errors()
            return "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ())) or '(root)'}: {e.get('msg')}"
                for e in items
            )
        except Exception:  # a user's error type with an errors() of its own
            pass
    return short(f"{type(error).__name__}: {error}")


def unanswered_cost(trigger: str | None) -> tuple[Decimal | None, None, str]:
    """(cost, cost source, note) of a request that got no completion back."""
    if trigger == "timeout":
        # The provider may have generated (and billed) tokens we never saw.
        return None, None, "timed out: the provider may have billed tokens that never arrived"
    return Decimal(0), None, "the provider returned no completion, so nothing was billed"
