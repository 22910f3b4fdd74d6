"""In-process fake tiers: put them in ``tiers=[...]`` (or in :func:`~escalate.testing.override`)
and the real engine runs over them, with real receipts, and no key, network or SDK involved.

- :class:`ScriptedTier` plays a script: answers, bad answers, provider failures and
  exceptions, one per request, in order.
- :class:`FunctionTier` answers with a function of the messages (sync or async).

What a script item (or a function's return value) can be:

- an answer: a pydantic model, a dict or a list, validated against ``response_model`` the
  way instructor does (strict, from JSON); one that fails is a quality failure
  (``validation``) with pydantic's errors as the reason;
- a ``str``: the model's raw output, parsed and validated;
- ``Reply(data=..., input_tokens=..., output_tokens=..., served_model=...)``: an answer with
  its own usage; ``Reply(finish_reason="length")`` is a ``truncated`` failure;
- ``Fault(429, retry_after=1)``, ``Fault(500)``, ``Fault(529)``: a provider failure (408,
  409, 429, 529 and 5xx), retried, then sideways, then up; other statuses (``Fault(401)``)
  reach the caller as a :class:`ScriptedFault`, like a real 401;
- ``Drop()``, ``Timeout()``, ``Malformed()``: a dropped connection, a timeout, a body that
  does not parse (provider failures);
- an exception instance: raised by "the provider"; it reaches the caller unchanged unless
  the function's ``on=`` matches it.

Tokens are the ones scripted (``Reply(input_tokens=..., output_tokens=...)``), else estimated
at four characters a token. Costs come from ``price=Price(...)``, else from genai-prices when
``served_model`` names a model it knows (``"gpt-4o-mini"``, ``"anthropic/claude-haiku-4-5"``),
else they are unknown (``None``), as with a real tier nobody priced.

The fakes' rooms: what may be scripted, and what each item comes to, is
:mod:`escalate.testing._items`; the machinery turning played items into Attempts and
outcomes is :mod:`escalate.testing._fake_tier`; this module holds the two fakes.
"""

from __future__ import annotations

import inspect
import json
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from escalate._breaker import DEFAULT_BREAKER, Breaker
from escalate._pricing import Price
from escalate.exceptions import ConfigurationError
from escalate.testing._fake_tier import _FakeTier
from escalate.testing._items import (
    Messages,
    ScriptedFault,
    ScriptExhausted,
    Timeout,
    _check_item,
)

__all__ = [
    "FunctionTier",
    "ScriptExhausted",
    "ScriptedFault",
    "ScriptedTier",
    "Timeout",
]


class ScriptedTier(_FakeTier):
    """A tier that plays ``items`` in order, one per request (re-asks included).

    ::

        cheap = ScriptedTier("cheap", {"total": "12,50"}, served_model="gpt-4o-mini")
        strong = ScriptedTier("strong", Fault(429, retry_after=0), Invoice(total=12.5))

    Each item is one answer, bad answer, provider failure or exception (see the module
    docs); ``Reply(data=..., input_tokens=..., output_tokens=...)`` scripts usage too. A
    request past the end of the script raises :class:`ScriptExhausted` (an
    ``AssertionError``) that names the tier and the request: a ``ScriptedTier("strong")``
    with no items asserts the tier is never called.

    - ``served_model``: the model the receipts name, and the one genai-prices prices when
      no ``price`` is given (``"gpt-4o-mini"``, or ``"provider/model"`` for one that is not
      OpenAI's, Anthropic's (``claude-*``) or Google's (``gemini-*``)).
    - ``price``: a :class:`~escalate.Price` per million tokens; it wins over genai-prices.
    - ``max_reasks``: how many validation failures this tier re-asks after, like
      ``Tier(max_reasks=...)``: each re-ask plays the next item.
    - ``gates``: gates checked on this tier's answers only, like ``Tier(gates=...)``.
    - ``breaker``: its circuit breaker, like ``Tier(breaker=...)``: on by default, one per
      fake (never shared with another fake of the same name); ``None`` switches it off.
    - ``supports_n``: answer a request for ``n`` choices (a consistency gate's samples) in
      one request, as OpenAI does: each choice plays the next item, validated on its own;
      one attempt, the input counted once, the output of every choice summed.

    ``calls`` holds the messages of every request; ``remaining`` counts unplayed items.
    Safe to share between threads and tasks.
    """

    def __init__(
        self,
        name: str,
        *items: object,
        served_model: str | None = None,
        price: Price | None = None,
        max_reasks: int = 0,
        gates: Sequence[Any] = (),
        breaker: Breaker | None = DEFAULT_BREAKER,
        supports_n: bool = False,
    ) -> None:
        super().__init__(
            name,
            served_model=served_model,
            price=price,
            max_reasks=max_reasks,
            gates=gates,
            breaker=breaker,
            supports_n=supports_n,
        )
        for index, item in enumerate(items):
            _check_item(item, f"ScriptedTier({name!r}) item {index}")
        self._script: deque[object] = deque(items)
        self._played = 0

    @property
    def remaining(self) -> int:
        """How many items are still to play."""
        with self._lock:
            return len(self._script)

    def _next_item(self, messages: Messages) -> object:
        with self._lock:
            if self._script:
                self._played += 1
                return self._script.popleft()
            played = self._played
        last_user = next(
            (m.get("content") for m in reversed(messages) if m.get("role") == "user"), None
        )
        raise ScriptExhausted(
            f"{self!r} was asked for answer {played + 1}, but its script holds {played}: "
            "the code under test made a request the test did not expect "
            f"(last user message: {_short(last_user)}); script more items, or find out "
            "why this tier was reached this often"
        )


class FunctionTier(_FakeTier):
    """A tier that answers every request with ``fn(messages)``, sync or async.

    ``fn`` gets the chat messages (a list of ``{"role": ..., "content": ...}`` dicts) and
    returns anything a :class:`ScriptedTier` can play: an answer (model, dict, raw JSON
    str, ``Reply`` with usage), a provider failure (``Fault(503)``, ``Drop()``,
    ``Timeout()``), or an exception instance. An exception ``fn`` raises counts as raised
    by the provider: it reaches the caller unchanged unless ``on=`` matches it.

    ::

        echo = FunctionTier("echo", lambda messages: {"text": messages[-1]["content"]})

    An async ``fn`` serves only async escalating functions. Other settings are those of
    :class:`ScriptedTier`.
    """

    def __init__(
        self,
        name: str,
        fn: Callable[[Messages], object] | Callable[[Messages], Awaitable[object]],
        *,
        served_model: str | None = None,
        price: Price | None = None,
        max_reasks: int = 0,
        gates: Sequence[Any] = (),
        breaker: Breaker | None = DEFAULT_BREAKER,
        supports_n: bool = False,
    ) -> None:
        super().__init__(
            name,
            served_model=served_model,
            price=price,
            max_reasks=max_reasks,
            gates=gates,
            breaker=breaker,
            supports_n=supports_n,
        )
        if not callable(fn):
            raise ConfigurationError(
                f"FunctionTier({name!r}): fn must be a function of the messages, "
                f"got {type(fn).__name__}"
            )
        self.fn = fn
        # A coroutine function, or an object whose __call__ is one.
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            type(fn).__call__
        )

    def check_flavour(self, is_async: bool) -> None:
        """An async ``fn`` cannot answer a sync function."""
        if self.is_async and not is_async:
            raise ConfigurationError(
                f"{self!r} has an async fn, but the escalating function is sync: "
                "give it a plain (sync) function"
            )

    def _checked(self, item: object) -> object:
        if inspect.isawaitable(item):
            if inspect.iscoroutine(item):
                item.close()
            raise TypeError(
                f"{self!r}: fn returned an awaitable to a sync escalating function; "
                "use a plain function, or make the escalating function async"
            )
        try:
            _check_item(item, f"{self!r}: fn returned a bad answer")
        except ConfigurationError as error:
            raise TypeError(str(error)) from None
        return item

    def _next_item(self, messages: Messages) -> object:
        try:
            item = self.fn([dict(m) for m in messages])
        except Exception as error:
            return error
        return self._checked(item)

    async def _next_item_async(self, messages: Messages) -> object:
        try:
            item = self.fn([dict(m) for m in messages])
            if inspect.isawaitable(item):
                item = await item
        except Exception as error:
            return error
        return self._checked(item)


def _short(value: object, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
