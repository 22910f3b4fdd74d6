"""Deployments: one place a tier's request can go, and the one room that calls instructor.

A tier has one or more deployments (itself, then its ``fallbacks``). A :class:`Deployment`
builds its SDK and instructor clients on first use (through its provider's entry), sends
requests, and turns everything a request can come to into an
:data:`~escalate._outcomes.TierCall` with an attempt on the receipt for every request.
Responses read for meaning: :mod:`escalate._responses`; n choices: :mod:`escalate._choices`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import escalate._choices as _choices
import escalate._instructor_logs  # noqa: F401  (installs the log filter)
from escalate._failures import classify, unanswered_cost, validation_reason
from escalate._outcomes import Answered, Failed, TierCall
from escalate._plan import Messages
from escalate._pricing import Priced, price_usage
from escalate._providers import PROVIDERS, client_flavour
from escalate._receipt import Attempt, Trigger
from escalate._recorder import Recorder, recording, shared_hooks
from escalate._responses import _from_response, _mid_stream
from escalate._secrets import remember_secrets, scrub, scrub_error, secrets_of
from escalate._switches import blocked_providers
from escalate.exceptions import ConfigurationError, ProviderCallBlocked

if TYPE_CHECKING:
    from escalate._config import Tier

__all__ = ["Deployment"]


class _ClientCache(dict[Any, Any]):
    """Clients by face: ``False`` for sync, the event loop for async. Entries of closed
    loops are dropped as new ones arrive, so a process running many ``asyncio.run`` calls
    does not keep every loop's client alive."""

    def __setitem__(self, key: Any, value: Any) -> None:
        for stale in [k for k in self if k is not False and k.is_closed()]:
            del self[stale]
        super().__setitem__(key, value)


@functools.lru_cache(maxsize=512)
def _prepared(response_model: Any) -> Any:
    """instructor's runtime class for ``response_model``, built once.

    instructor builds a subclass of the response model and its JSON schema on every call
    (about 1.8 ms of a 5.7 ms call here) unless it is handed that subclass already; it then
    answers with an instance of the subclass, which the decorator turns back into the
    user's own class. If instructor moves the function, every call prepares as before.
    """
    try:
        from instructor.v2.core.response_model import prepare_response_model
    except ImportError:  # pragma: no cover - another instructor layout
        return response_model
    return prepare_response_model(response_model) or response_model


async def _close_with_the_loop(client: Any) -> AsyncIterator[None]:
    """Suspended once started: asyncio.run closes every open async generator of its loop
    before the loop ends (``shutdown_asyncgens``), which runs this ``finally``."""
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await client.close()


class Deployment:
    """One place a tier's request can go: the tier itself or one of its fallbacks.

    Builds its SDK and instructor clients on first use (sync and async separately) and
    turns everything a request can come to into an :data:`~escalate._outcomes.TierCall`.
    """

    def __init__(
        self, config: Tier, *, name: str, tier_name: str, extra: Mapping[str, Any] | None = None
    ) -> None:
        self.tier_name = tier_name
        self.config = config
        self._name = name
        provider_name, _, self.model = config.model.partition("/")
        self.provider = PROVIDERS[provider_name]
        self._clients = _ClientCache()
        self._closers: weakref.WeakKeyDictionary[Any, AsyncIterator[None]] = (
            weakref.WeakKeyDictionary()
        )
        self._hooks: Any = None
        self._lock = threading.Lock()
        self._secrets = secrets_of(
            api_key=config.api_key, client=config.client, base_url=config.base_url
        )
        remember_secrets(self._secrets)
        self._create_kwargs = {
            **self.provider.default_create_kwargs,
            **(self.provider.stream_kwargs if config.stream else {}),
            **(extra or {}),
            **config.create_kwargs,
            **({"timeout": config.timeout} if config.timeout is not None else {}),
        }

    def __repr__(self) -> str:
        return f"Deployment({self.name!r}, model={self.config.model!r})"

    @property
    def name(self) -> str:
        """How receipts name this deployment."""
        return self._name

    @property
    def provider_name(self) -> str:
        """The provider this deployment sends to (``openai``, ``anthropic``, ...)."""
        return self.provider.name

    @property
    def breaker_key(self) -> tuple[str, str, str | None]:
        """(provider, model, base URL): the identity its circuit breaker is kept under."""
        base_url = self.config.base_url
        if base_url is None and self.config.client is not None:
            base_url = str(self.config.client.base_url)
        return self.provider.name, self.model, base_url.rstrip("/") if base_url else None

    @property
    def streams(self) -> bool:
        """Whether answers arrive as a stream of partials (``Tier(stream=True)``)."""
        return self.config.stream

    @property
    def loop_bound(self) -> bool:
        """Whether its async requests must be made on the caller's event loop: it was
        given a ready async client, whose connection pool belongs to the loop that opened
        it (a background audit then runs as a task there, see ``_background``)."""
        return self.config.client is not None and client_flavour(self.config.client)[1]

    def check_flavour(self, is_async: bool) -> None:
        """Raise ConfigurationError if a given client cannot serve this face."""
        if self.config.client is None:
            return
        _, client_is_async = client_flavour(self.config.client)
        if client_is_async != is_async:
            want = "an async" if is_async else "a sync"
            raise ConfigurationError(
                f"tier {self.name!r} was given a {'async' if client_is_async else 'sync'} "
                f"client, but the decorated function is {'async' if is_async else 'sync'}: "
                f"give it {want} client (or base_url/api_key and escalate builds both)"
            )

    # -- clients ---------------------------------------------------------------------------

    def instructor(self, is_async: bool) -> Any:
        """The sync instructor client, built once (``instructor(True)`` from inside a
        running loop gives that loop's, without arranging its closing: prefer
        :meth:`async_instructor`)."""
        key: Any = asyncio.get_running_loop() if is_async else False
        client = self._clients.get(key)
        if client is None:
            with self._lock:
                client = self._clients.get(key)
                if client is None:
                    client, _ = self._build(is_async)
                    self._clients[key] = client
        return client

    async def async_instructor(self) -> Any:
        """The running loop's instructor client. Async clients are kept per event loop:
        their connection pools belong to the loop that opened them, and each
        ``asyncio.run`` makes a new one. A client escalate built is closed when its loop
        shuts down, so finished loops leave no open transports behind."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is not None:
            return client
        with self._lock:
            client = self._clients.get(loop)
            if client is not None:
                return client
            client, owned = self._build(True)
            self._clients[loop] = client
        if owned is not None:
            closer = _close_with_the_loop(owned)
            self._closers[loop] = closer
            await closer.__anext__()
        return client

    def _build(self, is_async: bool) -> tuple[Any, Any]:
        """(the instructor client, the SDK client if escalate built it, else None)."""
        config = self.config
        if config.client is None:
            built = self.provider.build_client(is_async, config.base_url, config.api_key)
            return self.provider.instructor_client(built, config.mode), built
        # Hidden SDK retries would hide requests from the receipt: retry in one place. The
        # copy shares the user's connection pool, so it is the user's to close.
        copy = config.client.with_options(max_retries=0)
        return self.provider.instructor_client(copy, config.mode), None

    # -- requests --------------------------------------------------------------------------

    def request(
        self,
        messages: Messages,
        response_model: type[Any],
        context: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], Recorder]:
        """The create arguments of one request, and the recorder its hooks will feed."""
        if self._hooks is None:
            self._hooks = shared_hooks()
        model: Any = response_model  # a class, hashable, for _prepared's cache
        kwargs = {
            **self._create_kwargs,
            "model": self.model,
            "messages": messages,
            "response_model": _prepared(model),
            "max_retries": self.config.max_reasks,
            "hooks": self._hooks,
        }
        if context is not None:  # instructor's validation context
            kwargs["context"] = context
        return kwargs, Recorder(self.provider, self.attempt)

    def _refuse_if_blocked(self) -> None:
        blocker = blocked_providers.get()
        if blocker is not None:
            raise ProviderCallBlocked(
                f"a real request to {self.config.model!r} (tier {self.tier_name!r}) was made "
                f"while {blocker} blocks provider calls: fake the tier or replay a cassette"
            )

    def call_sync(
        self,
        messages: Messages,
        response_model: type[Any],
        *,
        on_partial: Callable[[Any], None] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> TierCall:
        """One request (instructor's re-asks included) from a sync face."""
        self._refuse_if_blocked()
        kwargs, recorder = self.request(messages, response_model, context)
        client = self.instructor(False)
        token = recording.set(recorder)
        try:
            if not self.config.stream:
                value, completion = client.create_with_completion(**kwargs)
                return Answered(value, recorder.attempts(None), completion)
            last = None
            for last in client.create_partial(**kwargs):
                if on_partial is not None:
                    on_partial(last)
        except Exception as error:
            return self.failed(error, recorder)
        finally:
            recording.reset(token)
        return self._streamed(last, response_model, recorder)

    async def call_async(
        self,
        messages: Messages,
        response_model: type[Any],
        *,
        on_partial: Callable[[Any], None] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> TierCall:
        """One request (instructor's re-asks included) from an async face."""
        self._refuse_if_blocked()
        kwargs, recorder = self.request(messages, response_model, context)
        client = await self.async_instructor()
        token = recording.set(recorder)
        try:
            if not self.config.stream:
                value, completion = await client.create_with_completion(**kwargs)
                return Answered(value, recorder.attempts(None), completion)
            last = None
            async for last in client.create_partial(**kwargs):
                if on_partial is not None:
                    on_partial(last)
        except Exception as error:
            return self.failed(error, recorder)
        finally:
            recording.reset(token)
        return self._streamed(last, response_model, recorder)

    # -- prompt cache, n choices: escalate._choices (its functions serve as methods) ----

    @property
    def prompt_caching(self) -> bool:
        """Whether this provider caches a marked prompt prefix (Anthropic)."""
        return _choices.prompt_caching(self)

    @property
    def supports_n(self) -> bool:
        """Whether one request here can ask for several choices (``n``; the tier not streaming)."""
        return _choices.supports_n(self)

    cache_marked = _choices.cache_marked
    call_choices_sync = _choices.call_choices_sync
    call_choices_async = _choices.call_choices_async

    # -- outcomes --------------------------------------------------------------------------

    def _streamed(self, last: Any, response_model: type[Any], recorder: Recorder) -> TierCall:
        """The last partial of a stream, validated as a whole answer."""
        from pydantic import BaseModel, ValidationError

        data = last.model_dump(mode="json") if isinstance(last, BaseModel) else None
        if recorder.pending:
            recorder.pending[-1]["raw_output"] = self.scrub(json.dumps(data, ensure_ascii=False))
        try:
            value = response_model.model_validate(data)
        except ValidationError as error:
            reason = self.scrub(validation_reason(error))
            attempts = recorder.attempts(("rejected", "validation", reason, None))
            return Failed("quality", "validation", reason, error, attempts)
        return Answered(value, recorder.attempts(None), None)

    def failed(self, error: Exception, recorder: Recorder) -> Failed:
        """What ``error`` means (see :func:`escalate._failures.classify`), with its attempts.
        The error and its chain are cleaned of keys in place: they may be raised or logged."""
        remember_secrets(secrets_of(api_key=None))  # a key set in the environment since
        scrub_error(error)
        found = _from_response(recorder)
        if found is None:
            found = classify(error)
            if found.kind == "provider" and not (recorder.awaits_response or _mid_stream(recorder)):
                recorder.on_request()  # instructor emitted no request hook for it
        reason = self.scrub(found.reason)
        attempts: tuple[Attempt, ...] = ()
        if found.kind != "error" or recorder.pending:
            attempts = recorder.attempts((found.outcome, found.trigger, reason, found.status))
        trigger = found.trigger or "error"
        return Failed(found.kind, trigger, reason, found.cause, attempts, found.retry_after)

    def attempt(
        self,
        record: Mapping[str, Any],
        index: int,
        outcome: Any,
        trigger: Trigger | None,
        reason: str | None,
        status: int | None,
    ) -> Attempt:
        """One request's record as the Attempt a receipt shows."""
        input_tokens, output_tokens, cached = record.get("usage", (None, None, None))
        served = record.get("served_model")
        priced = self._price(served, input_tokens, output_tokens, cached)
        cost, source, note = priced.cost_usd, priced.source, priced.note
        free = self.config.price is not None and self.config.price.is_free
        if record.get("response") is None and not free:  # a free tier costs 0 regardless
            cost, source, note = unanswered_cost(trigger)
        raw = record.get("raw_output")
        return Attempt(
            tier=self.tier_name,
            deployment=self.name,
            provider=self.provider.name,
            requested_model=self.model,
            served_model=served,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached,
            cost_usd=cost,
            cost_source=source,
            cost_note=note,
            latency_s=record.get("latency", time.perf_counter() - record["started"]),
            outcome=outcome,
            trigger=trigger,
            reason=reason,
            status_code=status,
            raw_output=self.scrub(raw) if raw is not None else None,
            reask=index,
            started_at=record["started_at"],
        )

    def _price(
        self,
        model: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        cached: int | None,
    ) -> Priced:
        return price_usage(
            provider=self.provider.genai_provider_id or self.provider.name,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached,
            override=self.config.price,
            priced_by_genai=self.provider.genai_provider_id is not None,
        )

    def estimate_cost(self, input_tokens: int, output_tokens: int) -> Decimal | None:
        """What a request of this size would cost here, priced at the requested model
        (for budget checks before a request; receipts price what actually served)."""
        return self._price(self.model, input_tokens, output_tokens, 0).cost_usd

    def scrub(self, text: str) -> str:
        """Remove every key escalate knows (this deployment's and any other's) from text
        bound for a receipt."""
        return scrub(text, self._secrets)
