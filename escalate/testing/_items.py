"""What a fake tier may play, and what each item comes to.

A script item (or a :class:`~escalate.testing.FunctionTier`'s return value) is an answer,
a provider failure or an exception: :func:`_check_item` refuses anything else, before it
is played, with a message saying what may be scripted. Each played item becomes a
:class:`_Played`, which the fake-tier machinery turns into a real Attempt and outcome.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel

from escalate._failures import TRANSIENT_STATUS
from escalate._outcomes import FailureKind
from escalate._receipt import AttemptOutcome, Trigger
from escalate.exceptions import ConfigurationError
from escalate.testing._server import Drop, Fault, Malformed, Reply

__all__ = ["ScriptExhausted", "ScriptedFault", "Timeout"]

Messages = list[dict[str, Any]]


@dataclass(frozen=True)
class Timeout:
    """A scripted request timeout: a provider failure (trigger ``timeout``) whose cost is
    unknown, as with a real timeout (the provider may have billed tokens that never came).
    ``delay`` seconds pass first."""

    delay: float = 0.0


class ScriptedFault(Exception):
    """The error behind a scripted :class:`Fault`, :class:`Drop`, :class:`Malformed` or
    :class:`Timeout`: the ``__cause__`` of ``AllTiersFailed`` when one ends the walk, and
    what reaches the caller for a status that is not transient (a 401, say)."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class ScriptExhausted(AssertionError):
    """A fake tier was asked for more answers than its script holds: the code under test
    made more requests than the test expected."""


_ANSWER_TYPES = (BaseModel, Mapping, list, str, Reply)
_FAILURE_TYPES = (Fault, Drop, Malformed, Timeout)
_ITEM_HELP = (
    "an answer (a pydantic model, a dict or list, a raw JSON str, a Reply), a provider "
    "failure (Fault, Drop, Timeout, Malformed) or an exception instance"
)


def _check_item(item: object, where: str) -> None:
    """Raise a clear error for something that cannot be played."""
    if isinstance(item, type) and issubclass(item, BaseException):
        raise ConfigurationError(
            f"{where}: script an exception instance, e.g. {item.__name__}('why'), not the class"
        )
    if isinstance(item, Reply):
        unsupported = [
            name
            for name, value in (
                ("refusal", item.refusal),
                ("logprobs", item.logprobs),
                ("tool_name", item.tool_name),
            )
            if value is not None
        ]
        if unsupported:
            raise ConfigurationError(
                f"{where}: a fake tier cannot play Reply({unsupported[0]}=...); serve it from "
                "a ProviderServer to a real tier instead"
            )
        return
    if not isinstance(item, (*_ANSWER_TYPES, *_FAILURE_TYPES, BaseException)):
        raise ConfigurationError(f"{where}: got {item!r}; a script item is {_ITEM_HELP}")


def _wrapped(raw: str) -> str:
    """A scripted answer for a non-model response type (``int``, ``str``, ``list``...) may
    be given bare: wrap it as the ``{"answer": ...}`` the tier is asked for."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = raw  # plain text
    if isinstance(data, dict) and set(data) == {"answer"}:
        return raw
    return json.dumps({"answer": data})


def _approx_tokens(text: str) -> int:
    """Four characters a token, like ProviderServer(tokens="approx")."""
    return max(1, round(len(text) / 4)) if text else 0


def _messages_text(messages: Messages) -> str:
    return "\n".join(
        m["content"] if isinstance(m.get("content"), str) else json.dumps(m.get("content"))
        for m in messages
    )


@dataclass(frozen=True)
class _Played:
    """What one request to a fake came to, before it becomes an Attempt."""

    outcome: AttemptOutcome
    trigger: Trigger | None = None
    reason: str | None = None
    value: Any = None
    failure: FailureKind | None = None
    error: BaseException | None = None
    raw_output: str | None = None
    tokens: tuple[int, int, int] | None = None
    served_model: str | None = None
    status: int | None = None
    retry_after: float | None = None


def _dump(data: Any) -> str:
    if isinstance(data, BaseModel):
        return data.model_dump_json()
    if data is None:
        return ""
    if isinstance(data, Mapping):
        data = dict(data)
    return json.dumps(data, ensure_ascii=False, default=str)


def _delay(item: object) -> float:
    delay = getattr(item, "delay", 0.0) if isinstance(item, (Reply, Fault, Timeout)) else 0.0
    return float(delay)


def _provider_failure(trigger: Trigger, reason: str, status: int | None) -> _Played:
    return _Played(
        "provider_error",
        trigger,
        reason,
        failure="provider",
        error=ScriptedFault(reason, status=status),
        status=status,
    )


def _fault(fault: Fault) -> _Played:
    status = fault.status
    reason = f"HTTP {status}: {fault.message}"
    error = ScriptedFault(reason, status=status, retry_after=fault.retry_after)
    if status in TRANSIENT_STATUS or status >= 500:
        trigger: Trigger = TRANSIENT_STATUS.get(status, "server_error")
        return replace(
            _provider_failure(trigger, reason, status), error=error, retry_after=fault.retry_after
        )
    # Like a real 401 or 400: not the provider's passing trouble, so not retried.
    return _Played("error", None, reason, failure="error", error=error, status=status)
