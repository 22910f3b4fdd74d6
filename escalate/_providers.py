"""Providers: everything that differs between openai, anthropic and OpenAI-compatible servers.

One :class:`Provider` entry per provider holds how to build its SDK and instructor clients,
how to read usage and raw output from its responses, and what it can do, as data
(``logprob_modes``, ``supports_n``), so no other module has to know a provider's name. A new
provider is one more entry in :data:`PROVIDERS`.

The SDKs are imported here only, and only when a client is built: a process whose tiers are
all openai never loads the anthropic SDK, and :func:`client_flavour` looks at the SDKs
already loaded instead of importing any.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from escalate.exceptions import ConfigurationError

if TYPE_CHECKING:
    from instructor import Mode

__all__ = ["PROVIDERS", "Provider", "Usage", "client_flavour", "mode_value"]

Usage = tuple[int | None, int | None, int | None]
"""(input tokens, cache reads included; output tokens; cached input tokens)."""

_NO_USAGE: Usage = (None, None, None)


@dataclass(frozen=True)
class Provider:
    """One provider: its clients, how to read its responses, and what it can do."""

    name: str
    title: str
    """How messages name it: ``OpenAI``, ``Anthropic``."""
    sdk: str
    """The SDK's module (``openai``, ``anthropic``); several providers may share one."""
    client_classes: tuple[str, str]
    """The SDK's (sync, async) client class names, to tell a user's client apart."""
    build_client: Callable[[bool, str | None, str | None], Any]
    """(is_async, base_url, api_key) -> a new SDK client, its own retries off."""
    instructor_client: Callable[[Any, Mode | None], Any]
    usage: Callable[[Any], Usage]
    raw_output: Callable[[Any], str | None]
    observe_chunk: Callable[[dict[str, Any], Any], None]
    """Reads a streamed chunk (or event) into an attempt's record: model and usage."""
    genai_provider_id: str | None
    """The provider id genai-prices knows; ``None``: only a tier price prices it."""
    needs_base_url: bool = False
    default_create_kwargs: Mapping[str, Any] = field(default_factory=dict)
    stream_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Request arguments a streamed request needs for its usage to come back."""
    logprob_modes: frozenset[str] = frozenset()
    """instructor modes (values) whose answer comes back with its tokens' logprobs."""
    supports_n: bool = False
    """Whether one request can ask for several choices (``n``), the prompt billed once."""
    prompt_caching: bool = False
    """Whether a prompt prefix can be marked for the provider's prompt cache
    (``cache_control``), so repeats of a request read it from the cache."""

    def logprob_reason(self, model: str, mode: Mode | None) -> str | None:
        """Why ``model`` in ``mode`` returns no logprobs for its answer; ``None`` if it does."""
        if not self.logprob_modes:
            return f"tier {model!r}: {self.title}'s API returns no logprobs"
        value = mode_value(mode)
        if value in self.logprob_modes:
            return None
        return (
            f"tier {model!r} in instructor mode {value}: {self.title} returns no logprobs for "
            "tool-call arguments: use Tier(..., mode=instructor.Mode.JSON_SCHEMA)"
        )


def mode_value(mode: Mode | None) -> str:
    """An instructor mode's value; instructor's default (tool calls) for ``None``."""
    return str(getattr(mode, "value", mode)) if mode is not None else "tool_call"


# --- openai and compatible servers -------------------------------------------------------


def _openai_client(default_key: str | None) -> Callable[[bool, str | None, str | None], Any]:
    def build(is_async: bool, base_url: str | None, api_key: str | None) -> Any:
        import openai

        cls = openai.AsyncOpenAI if is_async else openai.OpenAI
        return cls(api_key=api_key or default_key, base_url=base_url, max_retries=0)

    return build


def _instructor_openai(client: Any, mode: Mode | None) -> Any:
    import instructor

    return instructor.from_openai(client, mode=mode or instructor.Mode.TOOLS)


def _openai_usage(response: Any) -> Usage:
    usage = getattr(response, "usage", None)
    if usage is None:
        return _NO_USAGE
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or 0
    # prompt_tokens already counts cached tokens.
    return usage.prompt_tokens, usage.completion_tokens, cached


def finish_reason(response: Any) -> str | None:
    """Why the model stopped, read off a raw completion: OpenAI's first choice's
    ``finish_reason``, Anthropic's ``stop_reason`` (for tracing)."""
    choices = getattr(response, "choices", None)
    reason = getattr(choices[0], "finish_reason", None) if choices else None
    reason = reason or getattr(response, "stop_reason", None)
    return reason if isinstance(reason, str) else None


def _observe_openai_chunk(record: dict[str, Any], chunk: Any) -> None:
    record["served_model"] = getattr(chunk, "model", None) or record.get("served_model")
    if getattr(chunk, "usage", None) is not None:  # the last chunk, with include_usage
        record["usage"] = _openai_usage(chunk)


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


# --- google (Gemini's OpenAI-compatible endpoint) ------------------------------------------

GEMINI_OPENAI_URL = "https://generativelanguage.googleapis.com/v1beta/openai/"
"""Gemini's OpenAI-compatible endpoint: the openai SDK and instructor's OpenAI modes."""

_GOOGLE_KEY_VARIABLES = ("GOOGLE_API_KEY", "GEMINI_API_KEY")


def _build_google(is_async: bool, base_url: str | None, api_key: str | None) -> Any:
    import os

    import openai

    key = api_key or next(
        (os.environ[name] for name in _GOOGLE_KEY_VARIABLES if os.environ.get(name)), None
    )
    if key is None:
        raise ConfigurationError(
            "no key for a google tier: set GOOGLE_API_KEY (or GEMINI_API_KEY), "
            "or give Tier(..., api_key=...)"
        )
    cls = openai.AsyncOpenAI if is_async else openai.OpenAI
    return cls(api_key=key, base_url=base_url or GEMINI_OPENAI_URL, max_retries=0)


# --- anthropic ---------------------------------------------------------------------------


def _build_anthropic(is_async: bool, base_url: str | None, api_key: str | None) -> Any:
    import anthropic

    cls = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
    return cls(api_key=api_key, base_url=base_url, max_retries=0)


def _instructor_anthropic(client: Any, mode: Mode | None) -> Any:
    import instructor

    return instructor.from_anthropic(client, mode=mode or instructor.Mode.TOOLS)


def _anthropic_usage(response: Any) -> Usage:
    usage = getattr(response, "usage", None)
    if usage is None:
        return _NO_USAGE
    cache_read = getattr(usage, "cache_read_input_tokens", None) or 0
    cache_write = getattr(usage, "cache_creation_input_tokens", None) or 0
    # Anthropic's input_tokens leaves cache reads and writes out; receipts count all input.
    # A proxy may send input_tokens: null: then the input is unknown, not zero.
    base = getattr(usage, "input_tokens", None)
    total = None if base is None else base + cache_read + cache_write
    return total, getattr(usage, "output_tokens", None), cache_read


def _observe_anthropic_event(record: dict[str, Any], event: Any) -> None:
    kind = getattr(event, "type", None)
    if kind == "message_start":
        record["served_model"] = event.message.model
        record["usage"] = _anthropic_usage(event.message)
    elif kind == "message_delta" and getattr(event, "usage", None) is not None:
        input_tokens, _, cached = record.get("usage", _NO_USAGE)
        record["usage"] = (input_tokens, event.usage.output_tokens, cached)


def _anthropic_raw_output(response: Any) -> str | None:
    parts = []
    for block in getattr(response, "content", None) or ():
        if block.type == "tool_use":
            parts.append(json.dumps(block.input, ensure_ascii=False))
        elif block.type == "text":
            parts.append(block.text)
    return "\n".join(parts) if parts else None


# --- the entries -------------------------------------------------------------------------

# Only JSON in message.content carries logprobs: the OpenAI logprobs type has no field
# for tool-call arguments.
_OPENAI_LOGPROB_MODES = frozenset({"json_mode", "json_schema_mode", "markdown_json_mode"})
# The last stream chunk carries usage only when asked for.
_OPENAI_STREAM_KWARGS: Mapping[str, Any] = {"stream_options": {"include_usage": True}}

PROVIDERS: dict[str, Provider] = {
    "openai": Provider(
        name="openai",
        title="OpenAI",
        sdk="openai",
        client_classes=("OpenAI", "AsyncOpenAI"),
        build_client=_openai_client(None),
        instructor_client=_instructor_openai,
        usage=_openai_usage,
        raw_output=_openai_raw_output,
        observe_chunk=_observe_openai_chunk,
        genai_provider_id="openai",
        stream_kwargs=_OPENAI_STREAM_KWARGS,
        logprob_modes=_OPENAI_LOGPROB_MODES,
        supports_n=True,
    ),
    "anthropic": Provider(
        name="anthropic",
        title="Anthropic",
        sdk="anthropic",
        client_classes=("Anthropic", "AsyncAnthropic"),
        build_client=_build_anthropic,
        instructor_client=_instructor_anthropic,
        usage=_anthropic_usage,
        raw_output=_anthropic_raw_output,
        observe_chunk=_observe_anthropic_event,
        genai_provider_id="anthropic",
        default_create_kwargs={"max_tokens": 4096},
        prompt_caching=True,
    ),
    # Gemini through its OpenAI-compatible endpoint: no SDK of its own, priced by
    # genai-prices' "google" entries. n and logprobs are left off: not relied on there.
    "google": Provider(
        name="google",
        title="Google Gemini",
        sdk="openai",
        client_classes=("OpenAI", "AsyncOpenAI"),
        build_client=_build_google,
        instructor_client=_instructor_openai,
        usage=_openai_usage,
        raw_output=_openai_raw_output,
        observe_chunk=_observe_openai_chunk,
        genai_provider_id="google",
        stream_kwargs=_OPENAI_STREAM_KWARGS,
    ),
    "compatible": Provider(
        name="compatible",
        title="the OpenAI-compatible server",
        sdk="openai",
        client_classes=("OpenAI", "AsyncOpenAI"),
        # The compatible servers one runs locally (Ollama, llama.cpp) take any key.
        build_client=_openai_client("unused"),
        instructor_client=_instructor_openai,
        usage=_openai_usage,
        raw_output=_openai_raw_output,
        observe_chunk=_observe_openai_chunk,
        genai_provider_id=None,
        needs_base_url=True,
        stream_kwargs=_OPENAI_STREAM_KWARGS,
        logprob_modes=_OPENAI_LOGPROB_MODES,
        supports_n=True,
    ),
}

SDKS: tuple[str, ...] = tuple(dict.fromkeys(p.sdk for p in PROVIDERS.values()))
"""The SDK modules the providers use, each once."""


def client_flavour(client: Any) -> tuple[str, bool]:
    """(SDK, is_async) of a user's SDK client.

    Only SDKs already imported are looked at: a client of an SDK nobody imported cannot
    exist, and importing one to check would cost seconds for nothing.
    """
    for provider in PROVIDERS.values():
        module = sys.modules.get(provider.sdk)
        if module is None:
            continue
        sync_name, async_name = provider.client_classes
        if isinstance(client, getattr(module, async_name)):
            return provider.sdk, True
        if isinstance(client, getattr(module, sync_name)):
            return provider.sdk, False
    raise ConfigurationError(
        f"Tier(client=...) takes an {' or '.join(SDKS)} SDK client, got {type(client).__name__}"
    )
