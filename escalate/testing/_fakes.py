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
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from escalate._answers import Wrapped
from escalate._breaker import DEFAULT_BREAKER, Breaker, check_breaker
from escalate._failures import TRANSIENT_STATUS, unanswered_cost, validation_reason
from escalate._outcomes import Answered, Failed, FailureKind, TierCall
from escalate._pricing import Price, price_usage
from escalate._receipt import Attempt, AttemptOutcome, Trigger
from escalate.exceptions import ConfigurationError
from escalate.testing._server import Drop, Fault, Malformed, Reply

__all__ = [
    "FunctionTier",
    "ScriptExhausted",
    "ScriptedFault",
    "ScriptedTier",
    "Timeout",
]

Messages = list[dict[str, Any]]

_PROVIDER = "fake"
_instances = itertools.count(1)


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


def _genai_provider(served_model: str) -> tuple[str, str]:
    """(genai-prices provider id, model) for a served model name."""
    provider, slash, model = served_model.partition("/")
    if slash:
        return provider, model
    if served_model.startswith("claude"):
        return "anthropic", served_model
    if served_model.startswith("gemini"):
        return "google", served_model
    return "openai", served_model


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


class _FakeTier:
    """What both fakes share: settings, the request log, and turning played items into
    real Attempts and outcomes."""

    def __init__(
        self,
        name: str,
        *,
        served_model: str | None,
        price: Price | None,
        max_reasks: int,
        gates: Sequence[Any],
        breaker: Breaker | None = DEFAULT_BREAKER,
        supports_n: bool = False,
    ) -> None:
        kind = type(self).__name__
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"{kind}: name must be a non-empty str, got {name!r}")
        if served_model is not None and (not isinstance(served_model, str) or not served_model):
            raise ConfigurationError(
                f"{kind}({name!r}): served_model must be a model name such as 'gpt-4o-mini', "
                f"got {served_model!r}"
            )
        if price is not None and not isinstance(price, Price):
            raise ConfigurationError(
                f"{kind}({name!r}): price must be a Price(input=..., output=...), "
                f"got {type(price).__name__}"
            )
        if not isinstance(max_reasks, int) or isinstance(max_reasks, bool) or max_reasks < 0:
            raise ConfigurationError(
                f"{kind}({name!r}): max_reasks must be an int >= 0, got {max_reasks!r}"
            )
        check_breaker(breaker, f"{kind}({name!r})")
        self._name = name
        self.breaker = breaker
        self._instance = next(_instances)
        self.served_model = served_model
        self.price = price
        self.max_reasks = max_reasks
        self.gates = tuple(gates)
        self.supports_n = bool(supports_n)
        """Whether a request for ``n`` choices is answered in one request (see
        :meth:`call_choices_sync`); a consistency gate then asks for them so."""
        self._lock = threading.Lock()
        self._calls: list[Messages] = []

    @property
    def name(self) -> str:
        """The tier's name, as receipts and assertions call it."""
        return self._name

    @property
    def calls(self) -> list[Messages]:
        """The messages of every request this tier received, re-asks included, in order."""
        with self._lock:
            return [list(messages) for messages in self._calls]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r})"

    @property
    def provider_name(self) -> str:
        """Fakes are their own provider."""
        return _PROVIDER

    @property
    def model(self) -> str:
        """The model a fake plays: its ``served_model``, else its name."""
        return self.served_model or self._name

    @property
    def streams(self) -> bool:
        """Fakes answer whole."""
        return False

    @property
    def breaker_key(self) -> tuple[str, str, int]:
        """Each fake has a circuit breaker of its own, so no test's failures open a breaker
        for the next test's fakes."""
        return _PROVIDER, self._name, self._instance

    def check_flavour(self, is_async: bool) -> None:
        """Fakes serve sync and async functions alike."""

    def estimate_cost(self, input_tokens: int, output_tokens: int) -> Decimal | None:
        """What a request of this size would cost on this tier (for ``budget_usd``)."""
        served = self.served_model
        provider, model = _genai_provider(served) if served else (_PROVIDER, None)
        return price_usage(
            provider=provider,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=0,
            override=self.price,
            priced_by_genai=served is not None,
        ).cost_usd

    def _log(self, messages: Messages) -> None:
        with self._lock:
            self._calls.append([dict(m) for m in messages])

    # -- playing one item ----------------------------------------------------------------

    def _play(self, item: object, messages: Messages, response_model: type[Any]) -> _Played:
        served = self.served_model
        if isinstance(item, Reply):
            served = item.served_model or served
            raw = item.text if item.text is not None else _dump(item.data)
            tokens = (
                item.input_tokens
                if item.input_tokens is not None
                else _approx_tokens(_messages_text(messages)),
                item.output_tokens if item.output_tokens is not None else _approx_tokens(raw),
                item.cached_tokens,
            )
            if item.finish_reason == "length":
                return _Played(
                    "rejected",
                    "truncated",
                    "the output was cut off at the token limit",
                    failure="quality",
                    error=ScriptedFault("the output was cut off at the token limit (scripted)"),
                    raw_output=raw,
                    tokens=tokens,
                    served_model=served,
                )
            return self._validated(raw, tokens, served, response_model)
        if isinstance(item, _ANSWER_TYPES):
            raw = item if isinstance(item, str) else _dump(item)
            tokens = (_approx_tokens(_messages_text(messages)), _approx_tokens(raw), 0)
            return self._validated(raw, tokens, served, response_model)
        if isinstance(item, Fault):
            return _fault(item)
        if isinstance(item, Drop):
            reason = "connection failed: the connection was dropped (scripted)"
            return _provider_failure("connection", reason, None)
        if isinstance(item, Timeout):
            return _provider_failure("timeout", "the request timed out (scripted)", None)
        if isinstance(item, Malformed):
            reason = f"the provider sent a body that does not parse: {item.body!r} (scripted)"
            return _provider_failure("bad_response", reason, None)
        if isinstance(item, BaseException):
            reason = f"{type(item).__name__}: {item}"
            return _Played("error", None, reason, failure="error", error=item)
        raise TypeError(
            f"{self!r} cannot play {item!r}: a fake tier's answer is {_ITEM_HELP}"
        )  # pragma: no cover - items are checked before they are played

    def _validated(
        self,
        raw: str,
        tokens: tuple[int, int, int],
        served: str | None,
        response_model: type[Any],
    ) -> _Played:
        if issubclass(response_model, Wrapped):
            raw = _wrapped(raw)
        try:
            # instructor validates the model's JSON in strict mode: so do the fakes.
            value = response_model.model_validate_json(raw, strict=True)
        except ValidationError as error:
            return _Played(
                "rejected",
                "validation",
                validation_reason(error),
                failure="quality",
                error=error,
                raw_output=raw,
                tokens=tokens,
                served_model=served,
            )
        return _Played("answered", value=value, raw_output=raw, tokens=tokens, served_model=served)

    def _attempt(
        self, played: _Played, reask: int, started_at: datetime, latency: float
    ) -> Attempt:
        served = played.served_model
        model = None
        cost_source: Literal["genai-prices", "tier price"] | None
        if played.tokens is not None:
            provider, model = _genai_provider(served) if served else (_PROVIDER, None)
            priced = price_usage(
                provider=provider,
                model=model,
                input_tokens=played.tokens[0],
                output_tokens=played.tokens[1],
                cached_tokens=played.tokens[2],
                override=self.price,
                priced_by_genai=served is not None,
            )
            cost, cost_source, note = priced.cost_usd, priced.source, priced.note
            if cost is None and served is None and self.price is None:
                note = (
                    f"{self!r} has no price: give it price=Price(...) or a served_model "
                    "genai-prices knows"
                )
        else:
            cost, cost_source, note = unanswered_cost(played.trigger)
        return Attempt(
            tier=self._name,
            deployment=self._name,
            provider=_PROVIDER,
            requested_model=model or self._name,
            served_model=model,
            input_tokens=played.tokens[0] if played.tokens else None,
            output_tokens=played.tokens[1] if played.tokens else None,
            cached_tokens=played.tokens[2] if played.tokens else None,
            cost_usd=cost,
            cost_source=cost_source,
            cost_note=note,
            latency_s=latency,
            outcome=played.outcome,
            trigger=played.trigger,
            reason=played.reason,
            status_code=played.status,
            raw_output=played.raw_output,
            reask=reask,
            started_at=started_at,
        )

    def _finish(self, played: _Played, attempts: list[Attempt], reask: int) -> TierCall | Messages:
        """The tier's outcome, or the messages of the re-ask to make next."""
        if played.outcome == "answered":
            return Answered(played.value, tuple(attempts), None)
        assert played.failure is not None and played.error is not None
        if played.trigger == "validation" and reask < self.max_reasks:
            return [
                {"role": "assistant", "content": played.raw_output or ""},
                {
                    "role": "user",
                    "content": f"Recall the function correctly, fix the errors: {played.reason}",
                },
            ]
        return Failed(
            played.failure,
            played.trigger or "error",
            played.reason or "",
            played.error,
            tuple(attempts),
            played.retry_after,
        )

    # -- the Backend protocol -------------------------------------------------------------

    def _next_item(self, messages: Messages) -> object:
        raise NotImplementedError

    async def _next_item_async(self, messages: Messages) -> object:
        return self._next_item(messages)

    def call_sync(
        self,
        messages: Messages,
        response_model: type[Any],
        *,
        on_partial: Callable[[Any], None] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> TierCall:
        """Answer one request of the engine's, re-asks included."""
        attempts: list[Attempt] = []
        for reask in range(self.max_reasks + 1):
            started_at, started = datetime.now(UTC), time.perf_counter()
            self._log(messages)
            item = self._next_item(messages)
            if (delay := _delay(item)) > 0:
                time.sleep(delay)
            played = self._play(item, messages, response_model)
            attempts.append(self._attempt(played, reask, started_at, time.perf_counter() - started))
            outcome = self._finish(played, attempts, reask)
            if not isinstance(outcome, list):
                return outcome
            messages = [*messages, *outcome]
        raise AssertionError("unreachable: the last re-ask always finishes")  # pragma: no cover

    async def call_async(
        self,
        messages: Messages,
        response_model: type[Any],
        *,
        on_partial: Callable[[Any], None] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> TierCall:
        """Answer one request of the engine's, re-asks included, without blocking the loop."""
        attempts: list[Attempt] = []
        for reask in range(self.max_reasks + 1):
            started_at, started = datetime.now(UTC), time.perf_counter()
            self._log(messages)
            item = await self._next_item_async(messages)
            if (delay := _delay(item)) > 0:
                await asyncio.sleep(delay)
            played = self._play(item, messages, response_model)
            attempts.append(self._attempt(played, reask, started_at, time.perf_counter() - started))
            outcome = self._finish(played, attempts, reask)
            if not isinstance(outcome, list):
                return outcome
            messages = [*messages, *outcome]
        raise AssertionError("unreachable: the last re-ask always finishes")  # pragma: no cover

    def call_choices_sync(
        self,
        messages: Messages,
        response_model: type[Any],
        n: int,
        *,
        context: Mapping[str, Any] | None = None,
    ) -> TierCall:
        """Answer one request for ``n`` choices: each choice plays the next item."""
        started_at, started = datetime.now(UTC), time.perf_counter()
        self._log(messages)
        items = [self._next_item(messages) for _ in range(n)]
        if (delay := max(_delay(item) for item in items)) > 0:
            time.sleep(delay)
        return self._choices(items, messages, response_model, n, started_at, started)

    async def call_choices_async(
        self,
        messages: Messages,
        response_model: type[Any],
        n: int,
        *,
        context: Mapping[str, Any] | None = None,
    ) -> TierCall:
        """Answer one request for ``n`` choices without blocking the loop."""
        started_at, started = datetime.now(UTC), time.perf_counter()
        self._log(messages)
        items = [await self._next_item_async(messages) for _ in range(n)]
        if (delay := max(_delay(item) for item in items)) > 0:
            await asyncio.sleep(delay)
        return self._choices(items, messages, response_model, n, started_at, started)

    def _choices(
        self,
        items: list[object],
        messages: Messages,
        response_model: type[Any],
        n: int,
        started_at: datetime,
        started: float,
    ) -> TierCall:
        played = [self._play(item, messages, response_model) for item in items]
        latency = time.perf_counter() - started
        broken = next((p for p in played if p.tokens is None), None)
        if broken is not None:  # a provider failure or an exception fails the request
            attempt = self._attempt(broken, 0, started_at, latency)
            outcome = self._finish(broken, [attempt.model_copy(update={"choices": n})], 0)
            assert not isinstance(outcome, list)
            return outcome
        tokens = [p.tokens for p in played if p.tokens is not None]
        whole = _Played(
            "answered",
            raw_output="\n".join(p.raw_output or "" for p in played),
            tokens=(tokens[0][0], sum(t[1] for t in tokens), tokens[0][2]),
            served_model=played[0].served_model,
        )
        outcomes: list[TierCall] = []
        for one in played:
            if one.outcome == "answered":
                outcomes.append(Answered(one.value, ()))
            else:
                assert one.failure is not None and one.error is not None
                trigger = one.trigger or "validation"
                outcomes.append(Failed(one.failure, trigger, one.reason or "", one.error, ()))
        first = next((o for o in outcomes if isinstance(o, Answered)), None)
        if first is None:
            reason = f"none of the {n} choices validated"
            whole = dataclasses.replace(whole, outcome="rejected", trigger="validation")
            whole = dataclasses.replace(whole, reason=reason)
            attempt = self._attempt(whole, 0, started_at, latency)
            assert isinstance(outcomes[0], Failed)
            attempt = attempt.model_copy(update={"choices": n})
            return Failed("quality", "validation", reason, outcomes[0].error, (attempt,))
        attempt = self._attempt(whole, 0, started_at, latency).model_copy(update={"choices": n})
        return Answered(first.value, (attempt,), None, tuple(outcomes))


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
