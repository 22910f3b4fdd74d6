"""Tiers: what a user names, the deployments behind it, and the one place that talks to SDKs.

A tier is ``"provider/model"`` or a :class:`Tier`. Each tier has one or more *deployments*
(itself, then its ``fallbacks``): equivalent places to send the same request when the
provider fails. The provider SDKs (openai, anthropic) and instructor are imported here and
nowhere else; a new provider is one more :class:`_Provider` entry.
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from escalate._outcomes import Answered, Failed, TierCall
from escalate._plan import Backend
from escalate._pricing import Price, price_usage
from escalate._receipt import Attempt, Trigger
from escalate._switches import blocked_providers
from escalate.exceptions import ConfigurationError, ProviderCallBlocked

if TYPE_CHECKING:
    from instructor import Mode

__all__ = ["Backend", "BuiltTier", "Deployment", "Tier", "build_tiers"]

Messages = list[dict[str, Any]]


@dataclass(frozen=True)
class Tier:
    """One rung of the ladder, with everything that may differ between rungs.

    ``model`` is ``"provider/model"``: ``openai/gpt-4o-mini``, ``anthropic/claude-sonnet-4-5``,
    or ``compatible/<model>`` for any OpenAI-compatible server (vLLM, Ollama, llama.cpp),
    which needs ``base_url``. Everything else is optional:

    - ``name``: how receipts call this tier (default: ``model``).
    - ``client``: a ready SDK client (``openai.OpenAI``, ``openai.AsyncOpenAI``,
      ``anthropic.Anthropic``, ``anthropic.AsyncAnthropic``); its own retries are switched
      off. Or ``base_url`` and ``api_key`` to build one (the key defaults to the SDK's
      environment variable).
    - ``mode``: the instructor mode (default: instructor's for the provider).
    - ``create_kwargs``: extra arguments for every request (temperature, max_tokens, ...).
    - ``max_reasks``: re-asks instructor may make on this tier after a validation error
      before the task moves up (default 0).
    - ``timeout``: seconds per request.
    - ``price``: a :class:`Price` that overrides genai-prices for this tier.
    - ``fallbacks``: equivalent deployments (strings or Tiers) tried, in order, when this
      one keeps failing at the provider.
    - ``gates``: gates for this tier's answers only, run after the function's own.
    - ``gate_reasks``: how often a gate's rejection is re-asked on this tier, with the
      gate's reason fed back, before the task moves up (default 0).
    - ``on_timeout``: ``"retry"`` (a timeout is a provider failure: retried, then
      sideways) or ``"escalate"`` (the tier is too slow: move up at once).
    - ``stream``: stream the answer (instructor's partial streaming), so listeners get
      :class:`~escalate.events.PartialAnswer` events as it arrives. A streamed answer is
      validated once complete; streaming tiers make no re-asks, and gates see no raw
      completion (no logprobs).
    """

    model: str
    name: str | None = field(default=None, kw_only=True)
    client: Any = field(default=None, kw_only=True, repr=False)
    base_url: str | None = field(default=None, kw_only=True)
    api_key: str | None = field(default=None, kw_only=True, repr=False)
    mode: Mode | None = field(default=None, kw_only=True)
    create_kwargs: Mapping[str, Any] = field(default_factory=dict, kw_only=True)
    max_reasks: int = field(default=0, kw_only=True)
    timeout: float | None = field(default=None, kw_only=True)
    price: Price | None = field(default=None, kw_only=True)
    fallbacks: Sequence[Tier | str] = field(default=(), kw_only=True)
    gates: Sequence[Any] = field(default=(), kw_only=True)
    gate_reasks: int = field(default=0, kw_only=True)
    on_timeout: Literal["retry", "escalate"] = field(default="retry", kw_only=True)
    stream: bool = field(default=False, kw_only=True)

    @property
    def display_name(self) -> str:
        return self.name or self.model


# --- providers -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Provider:
    name: str
    build_client: Callable[[bool, Tier], Any]
    instructor_client: Callable[[Any, Mode | None], Any]
    usage: Callable[[Any], tuple[int | None, int | None, int | None]]
    raw_output: Callable[[Any], str | None]
    observe_chunk: Callable[[dict[str, Any], Any], None]
    """Reads a streamed chunk (or event) into an attempt's record: model and usage."""
    genai_provider_id: str | None
    """The provider id genai-prices knows; ``None``: only a tier price prices it."""
    needs_base_url: bool = False
    default_create_kwargs: Mapping[str, Any] = field(default_factory=dict)


def _build_openai(is_async: bool, tier: Tier) -> Any:
    import openai

    cls = openai.AsyncOpenAI if is_async else openai.OpenAI
    # The compatible servers one runs locally (Ollama, llama.cpp) take any key.
    key = tier.api_key or ("unused" if tier.model.startswith("compatible/") else None)
    return cls(api_key=key, base_url=tier.base_url, max_retries=0)


def _build_anthropic(is_async: bool, tier: Tier) -> Any:
    import anthropic

    cls = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
    return cls(api_key=tier.api_key, base_url=tier.base_url, max_retries=0)


def _instructor_openai(client: Any, mode: Mode | None) -> Any:
    import instructor

    return instructor.from_openai(client, mode=mode or instructor.Mode.TOOLS)


def _instructor_anthropic(client: Any, mode: Mode | None) -> Any:
    import instructor

    return instructor.from_anthropic(client, mode=mode or instructor.Mode.TOOLS)


def _openai_usage(response: Any) -> tuple[int | None, int | None, int | None]:
    usage = getattr(response, "usage", None)
    if usage is None:
        return None, None, None
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or 0
    # prompt_tokens already counts cached tokens.
    return usage.prompt_tokens, usage.completion_tokens, cached


def _anthropic_usage(response: Any) -> tuple[int | None, int | None, int | None]:
    usage = getattr(response, "usage", None)
    if usage is None:
        return None, None, None
    cache_read = getattr(usage, "cache_read_input_tokens", None) or 0
    cache_write = getattr(usage, "cache_creation_input_tokens", None) or 0
    # Anthropic's input_tokens leaves cache reads and writes out; receipts count all input.
    return usage.input_tokens + cache_read + cache_write, usage.output_tokens, cache_read


def _observe_openai_chunk(record: dict[str, Any], chunk: Any) -> None:
    record["served_model"] = getattr(chunk, "model", None) or record.get("served_model")
    if getattr(chunk, "usage", None) is not None:  # the last chunk, with include_usage
        record["usage"] = _openai_usage(chunk)


def _observe_anthropic_event(record: dict[str, Any], event: Any) -> None:
    kind = getattr(event, "type", None)
    if kind == "message_start":
        record["served_model"] = event.message.model
        record["usage"] = _anthropic_usage(event.message)
    elif kind == "message_delta" and getattr(event, "usage", None) is not None:
        input_tokens, _, cached = record.get("usage", (None, None, None))
        record["usage"] = (input_tokens, event.usage.output_tokens, cached)


def _openai_raw_output(response: Any) -> str | None:
    choices = getattr(response, "choices", None)
    if not choices:
        return None
    message = choices[0].message
    if message.tool_calls:
        return "\n".join(call.function.arguments for call in message.tool_calls)
    if message.content is not None:
        return str(message.content)
    if getattr(message, "refusal", None):
        return f"[refusal] {message.refusal}"
    return None


def _anthropic_raw_output(response: Any) -> str | None:
    parts = []
    for block in getattr(response, "content", None) or ():
        if block.type == "tool_use":
            parts.append(json.dumps(block.input, ensure_ascii=False))
        elif block.type == "text":
            parts.append(block.text)
    return "\n".join(parts) if parts else None


_OPENAI = _Provider(
    name="openai",
    build_client=_build_openai,
    instructor_client=_instructor_openai,
    usage=_openai_usage,
    raw_output=_openai_raw_output,
    observe_chunk=_observe_openai_chunk,
    genai_provider_id="openai",
)
_PROVIDERS: dict[str, _Provider] = {
    "openai": _OPENAI,
    "anthropic": _Provider(
        name="anthropic",
        build_client=_build_anthropic,
        instructor_client=_instructor_anthropic,
        usage=_anthropic_usage,
        raw_output=_anthropic_raw_output,
        observe_chunk=_observe_anthropic_event,
        genai_provider_id="anthropic",
        default_create_kwargs={"max_tokens": 4096},
    ),
    "compatible": _Provider(
        name="compatible",
        build_client=_build_openai,
        instructor_client=_instructor_openai,
        usage=_openai_usage,
        raw_output=_openai_raw_output,
        observe_chunk=_observe_openai_chunk,
        genai_provider_id=None,
        needs_base_url=True,
    ),
}


def _client_flavour(client: Any) -> tuple[str, bool]:
    """(provider, is_async) of a user's SDK client."""
    import anthropic
    import openai

    if isinstance(client, openai.AsyncOpenAI):
        return "openai", True
    if isinstance(client, openai.OpenAI):
        return "openai", False
    if isinstance(client, anthropic.AsyncAnthropic):
        return "anthropic", True
    if isinstance(client, anthropic.Anthropic):
        return "anthropic", False
    raise ConfigurationError(
        f"Tier(client=...) takes an openai or anthropic SDK client, got {type(client).__name__}"
    )


# --- failures ----------------------------------------------------------------------------

_TRANSIENT_STATUS = {408: "timeout", 409: "conflict", 429: "rate_limit", 529: "overloaded"}


def _retry_after(error: BaseException) -> float | None:
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
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max((parsed - datetime.now(parsed.tzinfo)).total_seconds(), 0.0)


def _classify_sdk_error(error: BaseException) -> tuple[str, str, int | None] | None:
    """(trigger, reason, status) for a transient provider failure; None if not one."""
    import anthropic
    import openai

    timeouts = (openai.APITimeoutError, anthropic.APITimeoutError)
    connections = (openai.APIConnectionError, anthropic.APIConnectionError)
    statuses = (openai.APIStatusError, anthropic.APIStatusError)
    bad_bodies = (openai.APIResponseValidationError, anthropic.APIResponseValidationError)
    if isinstance(error, timeouts):
        return "timeout", "the request timed out", None
    if isinstance(error, connections):
        return "connection", f"connection failed: {error}", None
    if isinstance(error, bad_bodies):
        return "bad_response", f"the provider sent a body that does not parse: {error}", None
    if isinstance(error, statuses):
        status = error.status_code
        if status in _TRANSIENT_STATUS or status >= 500:
            trigger = _TRANSIENT_STATUS.get(status, "server_error")
            return trigger, f"HTTP {status}: {_short(str(error))}", status
    return None


def _is_garbled_body(error: BaseException, cause: BaseException) -> bool:
    """The SDK raised a JSON error on the HTTP response itself (not on the model's answer:
    instructor lists answers that failed to parse in ``failed_attempts``)."""
    return isinstance(cause, json.JSONDecodeError) and getattr(error, "failed_attempts", None) == []


def _cassette_miss(error: BaseException) -> BaseException | None:
    """vcrpy's CannotOverwriteExistingCassetteException, if it is behind ``error``."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if type(current).__name__ == "CannotOverwriteExistingCassetteException":
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _short(text: str, limit: int = 500) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _validation_reason(error: BaseException) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors):
        try:
            items = errors()
            return "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ())) or '(root)'}: {e.get('msg')}"
                for e in items
            )
        except Exception:  # a user's error type with an errors() of its own
            pass
    return _short(f"{type(error).__name__}: {error}")


# --- instructor's logs ---------------------------------------------------------------------

_recording: contextvars.ContextVar[_Recorder] = contextvars.ContextVar("escalate_recording")
"""The recorder of the tier call in progress in this thread or task (if any)."""


class _DemoteInstructorErrors(logging.Filter):
    """instructor logs every exhausted call at ERROR ("Max retries exceeded"). Inside an
    escalating call that is the designed path, and the receipt holds it all: demote those
    records to DEBUG so they reach only handlers that asked for debug output."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _recording.get(None) is not None and record.levelno > logging.DEBUG:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


logging.getLogger("instructor.v2.retry").addFilter(_DemoteInstructorErrors())


# --- deployments -------------------------------------------------------------------------


class _ClientCache(dict[Any, Any]):
    """Clients by face: ``False`` for sync, the event loop for async. Entries of closed
    loops are dropped as new ones arrive, so a process running many ``asyncio.run`` calls
    does not keep every loop's client alive."""

    def __setitem__(self, key: Any, value: Any) -> None:
        for stale in [k for k in self if k is not False and k.is_closed()]:
            del self[stale]
        super().__setitem__(key, value)


_ANSWERED = ("answered", None, None)
# A request that got no parsed response yet did not end the call: instructor retried it
# because the SDK raised a JSON error on a garbled body.
_GARBLED = ("provider_error", "bad_response", "the provider sent a body that does not parse")


class _Recorder:
    """Turns instructor's per-request hooks into one Attempt each.

    instructor turns ``response.usage`` into a running total in place, so usage is copied
    the moment each response arrives.
    """

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.pending: list[dict[str, Any]] = []

    @staticmethod
    def shared_hooks() -> Any:
        """One instructor ``Hooks`` for every call of a deployment: its handlers find the
        call's recorder in a context variable (each thread and task has its own), which
        saves building hooks on every call."""
        from instructor.core.hooks import Hooks

        hooks = Hooks()
        hooks.on("completion:kwargs", lambda *a, **k: _recording.get()._on_request())
        hooks.on("completion:response", lambda r, *a, **k: _recording.get()._on_response(r))
        hooks.on("parse:error", lambda e, *a, **k: _recording.get()._on_parse_error(e))
        return hooks

    def _on_request(self, *args: Any, **kwargs: Any) -> None:
        self.pending.append(
            {"started": time.perf_counter(), "started_at": datetime.now(UTC), "response": None}
        )

    def _on_response(self, response: Any, *args: Any, **kwargs: Any) -> None:
        record = self.pending[-1]
        provider = self.deployment.provider
        record["latency"] = time.perf_counter() - record["started"]
        record["response"] = response
        if hasattr(response, "_iterator") and not hasattr(response, "usage"):
            self._tap(record, response)  # a stream: model and usage arrive in its chunks
            return
        record["served_model"] = getattr(response, "model", None)
        record["usage"] = provider.usage(response)
        record["raw_output"] = provider.raw_output(response)

    def _tap(self, record: dict[str, Any], stream: Any) -> None:
        """Watch an SDK stream's chunks go by (instructor consumes them) for the served
        model and the usage; the latency is the time to the last chunk."""
        observe = self.deployment.provider.observe_chunk
        source = stream._iterator

        def timed() -> None:
            record["latency"] = time.perf_counter() - record["started"]

        if hasattr(source, "__anext__"):

            async def tapped_async() -> Any:
                async for chunk in source:
                    observe(record, chunk)
                    yield chunk
                timed()

            stream._iterator = tapped_async()
        else:

            def tapped() -> Any:
                for chunk in source:
                    observe(record, chunk)
                    yield chunk
                timed()

            stream._iterator = tapped()

    def _on_parse_error(self, error: BaseException, *args: Any, **kwargs: Any) -> None:
        self.pending[-1]["failure"] = ("rejected", "validation", _validation_reason(error))

    def attempts(
        self, last: tuple[str, str | None, str | None, int | None] | None
    ) -> tuple[Attempt, ...]:
        """The attempts so far; ``last`` (outcome, trigger, reason, status) stamps the final
        one when the call ended in an exception."""
        built = []
        for index, record in enumerate(self.pending):
            default = _ANSWERED if record["response"] is not None else _GARBLED
            outcome, trigger, reason = record.get("failure", default)
            status = None
            if index == len(self.pending) - 1 and last is not None:
                outcome, trigger, reason, status = last
            built.append(self.deployment.attempt(record, index, outcome, trigger, reason, status))
        return tuple(built)


class Deployment:
    """One place a tier's request can go: the tier itself or one of its fallbacks.

    Builds its SDK and instructor clients on first use (sync and async separately) and
    turns everything a request can come to into an :data:`~escalate._outcomes.TierCall`.
    """

    def __init__(
        self, tier: Tier, config: Tier, name: str, extra: Mapping[str, Any] | None = None
    ) -> None:
        self.tier_name = tier.display_name
        self.name = name
        self.config = config
        provider_name, _, self.model = config.model.partition("/")
        self.provider = _PROVIDERS[provider_name]
        self._clients = _ClientCache()
        self._hooks: Any = None
        self._lock = threading.Lock()
        self._secrets = tuple(s for s in (config.api_key, _client_key(config.client)) if s)
        streams = config.stream and self.provider.name != "anthropic"
        self._create_kwargs = {
            **self.provider.default_create_kwargs,
            **({"stream_options": {"include_usage": True}} if streams else {}),
            **(extra or {}),
            **config.create_kwargs,
            **({"timeout": config.timeout} if config.timeout is not None else {}),
        }

    def __repr__(self) -> str:
        return f"Deployment({self.name!r}, model={self.config.model!r})"

    @property
    def provider_name(self) -> str:
        """The provider this deployment sends to (``openai``, ``anthropic``, ...)."""
        return self.provider.name

    @property
    def streams(self) -> bool:
        """Whether answers arrive as a stream of partials (``Tier(stream=True)``)."""
        return self.config.stream

    def check_flavour(self, is_async: bool) -> None:
        """Raise ConfigurationError if a given client cannot serve this face."""
        if self.config.client is None:
            return
        _, client_is_async = _client_flavour(self.config.client)
        if client_is_async != is_async:
            want = "an async" if is_async else "a sync"
            raise ConfigurationError(
                f"tier {self.name!r} was given a {'async' if client_is_async else 'sync'} "
                f"client, but the decorated function is {'async' if is_async else 'sync'}: "
                f"give it {want} client (or base_url/api_key and escalate builds both)"
            )

    def instructor(self, is_async: bool) -> Any:
        """The instructor client for this face, built once. Async clients are kept per
        event loop: their connection pools belong to the loop that opened them, and each
        ``asyncio.run`` makes a new one."""
        key: Any = asyncio.get_running_loop() if is_async else False
        client = self._clients.get(key)
        if client is None:
            with self._lock:
                client = self._clients.get(key)
                if client is None:
                    client = self._build(is_async)
                    self._clients[key] = client
        return client

    def _build(self, is_async: bool) -> Any:
        sdk_client = self.config.client
        if sdk_client is None:
            sdk_client = self.provider.build_client(is_async, self.config)
        else:
            # Hidden SDK retries would hide requests from the receipt: retry in one place.
            sdk_client = sdk_client.with_options(max_retries=0)
        return self.provider.instructor_client(sdk_client, self.config.mode)

    def request(
        self,
        messages: Messages,
        response_model: type[Any],
        context: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], _Recorder]:
        recorder = _Recorder(self)
        model: Any = response_model
        kwargs = {
            **self._create_kwargs,
            "model": self.model,
            "messages": messages,
            "response_model": _prepared(model),
            "max_retries": self.config.max_reasks,
            "hooks": self._hooks or self._make_hooks(),
        }
        if context is not None:
            kwargs["context"] = context
        return kwargs, recorder

    def _make_hooks(self) -> Any:
        self._hooks = _Recorder.shared_hooks()
        return self._hooks

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
        self._refuse_if_blocked()
        kwargs, recorder = self.request(messages, response_model, context)
        client = self.instructor(False)
        token = _recording.set(recorder)
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
            _recording.reset(token)
        return self._streamed(last, response_model, recorder)

    async def call_async(
        self,
        messages: Messages,
        response_model: type[Any],
        *,
        on_partial: Callable[[Any], None] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> TierCall:
        self._refuse_if_blocked()
        kwargs, recorder = self.request(messages, response_model, context)
        client = self.instructor(True)
        token = _recording.set(recorder)
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
            _recording.reset(token)
        return self._streamed(last, response_model, recorder)

    def _streamed(self, last: Any, response_model: type[Any], recorder: _Recorder) -> TierCall:
        """The last partial of a stream, validated as a whole answer."""
        from pydantic import BaseModel, ValidationError

        data = last.model_dump(mode="json") if isinstance(last, BaseModel) else None
        if recorder.pending:
            recorder.pending[-1]["raw_output"] = self.scrub(json.dumps(data, ensure_ascii=False))
        try:
            value = response_model.model_validate(data)
        except ValidationError as error:
            reason = self.scrub(_validation_reason(error))
            attempts = recorder.attempts(("rejected", "validation", reason, None))
            return Failed("quality", "validation", reason, error, attempts)
        return Answered(value, recorder.attempts(None), None)

    def failed(self, error: Exception, recorder: _Recorder) -> Failed:
        """Tell a provider failure from a bad answer from anything else."""
        from instructor.core.exceptions import IncompleteOutputException, InstructorRetryException
        from pydantic import ValidationError

        cause: BaseException = error
        if isinstance(error, InstructorRetryException) and error.__cause__ is not None:
            cause = error.__cause__
        if (miss := _cassette_miss(error)) is not None:
            # A test asked for a request its cassette does not hold: neither a provider
            # failure nor a bad answer, so never retried or escalated.
            raise miss
        provider_failure = _classify_sdk_error(cause)
        if provider_failure is None and _is_garbled_body(error, cause):
            provider_failure = (
                "bad_response",
                f"the provider sent a body that does not parse: {cause}",
                None,
            )
        if provider_failure is not None:
            trigger, reason, status = provider_failure
            reason = self.scrub(reason)
            if not recorder.pending or recorder.pending[-1]["response"] is not None:
                recorder._on_request()  # instructor emitted no request hook for it
            attempts = recorder.attempts(("provider_error", trigger, reason, status))
            return Failed("provider", trigger, reason, cause, attempts, _retry_after(cause))
        if isinstance(cause, ValidationError):  # a stream's final answer, validated by instructor
            reason = self.scrub(_validation_reason(cause))
            attempts = recorder.attempts(("rejected", "validation", reason, None))
            return Failed("quality", "validation", reason, cause, attempts)
        if isinstance(error, InstructorRetryException) and error.failed_attempts:
            reason = self.scrub(_validation_reason(error.failed_attempts[-1].exception))
            attempts = recorder.attempts(("rejected", "validation", reason, None))
            return Failed("quality", "validation", reason, cause, attempts)
        if isinstance(cause, IncompleteOutputException):
            reason = "the output was cut off at the token limit"
            attempts = recorder.attempts(("rejected", "truncated", reason, None))
            return Failed("quality", "truncated", reason, cause, attempts)
        reason = self.scrub(_short(f"{type(cause).__name__}: {cause}"))
        status = getattr(cause, "status_code", None)
        attempts = recorder.attempts(("error", None, reason, status)) if recorder.pending else ()
        return Failed("error", "error", reason, cause, attempts)

    def attempt(
        self,
        record: Mapping[str, Any],
        index: int,
        outcome: Any,
        trigger: Trigger | None,
        reason: str | None,
        status: int | None,
    ) -> Attempt:
        input_tokens, output_tokens, cached = record.get("usage", (None, None, None))
        served = record.get("served_model")
        priced = price_usage(
            provider=self.provider.genai_provider_id or self.provider.name,
            model=served,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached,
            override=self.config.price,
            priced_by_genai=self.provider.genai_provider_id is not None,
        )
        latency = record.get("latency", time.perf_counter() - record["started"])
        raw = record.get("raw_output")
        priced_cost, source, note = priced.cost_usd, priced.source, priced.note
        if record.get("response") is None:
            priced_cost, source, note = _unanswered_cost(trigger)
        return Attempt(
            tier=self.tier_name,
            deployment=self.name,
            provider=self.provider.name,
            requested_model=self.model,
            served_model=served,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached,
            cost_usd=priced_cost,
            cost_source=source,
            cost_note=note,
            latency_s=latency,
            outcome=outcome,
            trigger=trigger,
            reason=reason,
            status_code=status,
            raw_output=self.scrub(raw) if raw is not None else None,
            reask=index,
            started_at=record["started_at"],
        )

    def estimate_cost(self, input_tokens: int, output_tokens: int) -> Decimal | None:
        """What a request of this size would cost here, priced at the requested model
        (for budget checks before a request; receipts price what actually served)."""
        return price_usage(
            provider=self.provider.genai_provider_id or self.provider.name,
            model=self.model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=0,
            override=self.config.price,
            priced_by_genai=self.provider.genai_provider_id is not None,
        ).cost_usd

    def scrub(self, text: str) -> str:
        """Remove any API key this deployment knows from text bound for a receipt."""
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text


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


def _unanswered_cost(trigger: str | None) -> tuple[Decimal | None, None, str]:
    if trigger == "timeout":
        # The provider may have generated (and billed) tokens we never saw.
        return None, None, "timed out: the provider may have billed tokens that never arrived"
    return Decimal(0), None, "the provider returned no completion, so nothing was billed"


def _client_key(client: Any) -> str | None:
    key = getattr(client, "api_key", None)
    return key if isinstance(key, str) else None


# --- configuration -----------------------------------------------------------------------


def _as_tier(spec: Tier | str, where: str) -> Tier:
    if isinstance(spec, str):
        spec = Tier(spec)
    if not isinstance(spec, Tier):
        raise ConfigurationError(
            f"{where}: a tier is a 'provider/model' string or a Tier, got {type(spec).__name__}"
        )
    provider, slash, model = spec.model.partition("/")
    if not slash or not provider or not model:
        raise ConfigurationError(
            f"{where}: tier {spec.model!r} must be 'provider/model', "
            f"e.g. 'openai/gpt-4o-mini' (providers: {', '.join(_PROVIDERS)})"
        )
    if provider not in _PROVIDERS:
        raise ConfigurationError(
            f"{where}: unknown provider {provider!r} in {spec.model!r}; known providers: "
            f"{', '.join(_PROVIDERS)} (any OpenAI-compatible server is "
            f"Tier('compatible/<model>', base_url=...))"
        )
    if _PROVIDERS[provider].needs_base_url and not spec.base_url and spec.client is None:
        raise ConfigurationError(f"{where}: tier {spec.model!r} needs base_url=...")
    if spec.client is not None:
        given = _client_flavour(spec.client)[0]
        wanted = "anthropic" if provider == "anthropic" else "openai"
        if given != wanted:
            raise ConfigurationError(
                f"{where}: tier {spec.model!r} needs an {wanted} client, got an {given} one"
            )
    if not isinstance(spec.max_reasks, int) or spec.max_reasks < 0:
        raise ConfigurationError(
            f"{where}: max_reasks must be an int >= 0, got {spec.max_reasks!r}"
        )
    if spec.timeout is not None and not spec.timeout > 0:
        raise ConfigurationError(f"{where}: timeout must be > 0 seconds, got {spec.timeout!r}")
    if not isinstance(spec.gate_reasks, int) or spec.gate_reasks < 0:
        raise ConfigurationError(
            f"{where}: gate_reasks must be an int >= 0, got {spec.gate_reasks!r}"
        )
    if spec.on_timeout not in ("retry", "escalate"):
        raise ConfigurationError(
            f"{where}: on_timeout must be 'retry' or 'escalate', got {spec.on_timeout!r}"
        )
    if spec.price is not None and not isinstance(spec.price, Price):
        raise ConfigurationError(f"{where}: price must be a Price, got {type(spec.price).__name__}")
    return spec


@dataclass(frozen=True)
class BuiltTier:
    """A checked tier and its deployments, in the order they are tried."""

    name: str
    deployments: tuple[Backend, ...]
    gates: tuple[Any, ...] = ()
    gate_reasks: int = 0
    on_timeout: Literal["retry", "escalate"] = "retry"


def build_tiers(
    specs: Sequence[Tier | str | Backend], gates: Sequence[Any] = ()
) -> tuple[BuiltTier, ...]:
    """Check every tier once, when the decorator is applied, and build its deployments.

    ``gates`` are the function's own gates: each may refuse a tier (``check_tier``) or
    need request arguments on it (``request_kwargs``, such as ``logprobs=True``).
    """
    if isinstance(specs, (str, Tier, Backend)):
        raise ConfigurationError("tiers must be a list of tiers, cheapest first, not one tier")
    if not specs:
        raise ConfigurationError("tiers is empty: give at least one 'provider/model'")
    built: list[BuiltTier] = []
    for position, spec in enumerate(specs):
        tier = _build_tier(spec, position, tuple(gates))
        if tier.name in {b.name for b in built}:
            raise ConfigurationError(
                f"tiers[{position}]: duplicate tier name {tier.name!r}; "
                "give one of them Tier(..., name='...')"
            )
        built.append(tier)
    return tuple(built)


def _build_tier(spec: Tier | str | Backend, position: int, gates: tuple[Any, ...]) -> BuiltTier:
    if not isinstance(spec, (str, Tier)) and isinstance(spec, Backend):
        return BuiltTier(spec.name, (spec,), tuple(getattr(spec, "gates", ())))
    tier = _as_tier(spec, f"tiers[{position}]")
    extra = _gate_request_kwargs(tier, (*gates, *tier.gates), f"tiers[{position}]")
    deployments: list[Backend] = [Deployment(tier, tier, tier.display_name, extra)]
    for index, fallback_spec in enumerate(tier.fallbacks):
        fallback = _as_tier(fallback_spec, f"tiers[{position}].fallbacks[{index}]")
        name = fallback.name or fallback.model
        if name in {d.name for d in deployments}:
            name = f"{name}#{index + 2}"
        deployments.append(Deployment(tier, fallback, name, extra))
    return BuiltTier(
        tier.display_name, tuple(deployments), tuple(tier.gates), tier.gate_reasks, tier.on_timeout
    )


def _gate_request_kwargs(tier: Tier, gates: Sequence[Any], where: str) -> dict[str, Any]:
    """Let each gate refuse the tier, and gather the request arguments the gates need."""
    extra: dict[str, Any] = {}
    for gate in gates:
        if not callable(gate):
            raise ConfigurationError(f"{where}: a gate must be callable, got {gate!r}")
        check = getattr(gate, "check_tier", None)
        if check is not None:
            check(tier)
        extra.update(getattr(gate, "request_kwargs", None) or {})
    return extra
