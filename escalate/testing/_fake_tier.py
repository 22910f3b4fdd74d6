"""The machinery both fake tiers share: settings, the request log, the Backend protocol
the engine calls, and turning each played item into a real Attempt (tokens, cost,
latency) and a real outcome (an answer, a re-ask, a failure).

What to play next is the one thing a fake of its own decides (``_next_item``).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import ValidationError

from escalate._answers import Wrapped
from escalate._breaker import DEFAULT_BREAKER, Breaker, check_breaker
from escalate._failures import unanswered_cost, validation_reason
from escalate._outcomes import Answered, Failed, TierCall
from escalate._pricing import Price, price_usage
from escalate._receipt import Attempt
from escalate.exceptions import ConfigurationError
from escalate.testing._fake_choices import choices_async, choices_sync
from escalate.testing._items import (
    _ANSWER_TYPES,
    _ITEM_HELP,
    Messages,
    ScriptedFault,
    Timeout,
    _approx_tokens,
    _delay,
    _dump,
    _fault,
    _messages_text,
    _Played,
    _provider_failure,
    _wrapped,
)
from escalate.testing._server import Drop, Fault, Malformed, Reply

_PROVIDER = "fake"
_instances = itertools.count(1)


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

    def call_choices_sync(
        self,
        messages: Messages,
        response_model: type[Any],
        n: int,
        *,
        context: Mapping[str, Any] | None = None,
    ) -> TierCall:
        """Answer one request for ``n`` choices (with ``supports_n``; see _fake_choices)."""
        return choices_sync(self, messages, response_model, n)

    async def call_choices_async(
        self,
        messages: Messages,
        response_model: type[Any],
        n: int,
        *,
        context: Mapping[str, Any] | None = None,
    ) -> TierCall:
        """The async twin of :meth:`call_choices_sync`."""
        return await choices_async(self, messages, response_model, n)

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
