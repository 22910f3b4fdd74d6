"""OpenTelemetry: every call a span, every request a child span, metrics from the receipt.

Nothing here imports ``opentelemetry`` until a call runs with it importable (checked once,
then cached), and ``import escalate`` never does. :func:`begin` is the one entry: it answers
``None`` (and costs a global lookup or two) unless a tracer provider or a meter provider
other than the API's default no-op one is configured, so a call with no SDK configured
builds no span, no event and no attribute.

What is recorded:

- the *call span* ``invoke_workflow {function}`` (INTERNAL), current for the whole walk,
  ended with the receipt's facts: its id, outcome, whether it escalated, the answering
  tier, the cost; moves, gate verdicts and breaker skips are events on it;
- one *attempt span* ``chat {model}`` (CLIENT) per request, current while the HTTP request
  runs (so an instrumented SDK or HTTP client nests its spans under it), carrying the GenAI
  semantic conventions and escalate's own facts under ``escalate.``. A step in which
  instructor re-asked makes several requests that escalate only learns of when the step
  returns: that step's span then holds one child span per request, placed after the fact
  at the request's own start and latency;
- the conventions' ``gen_ai.client.token.usage`` and ``gen_ai.client.operation.duration``
  histograms per attempt, and escalate's ``escalate.calls``, ``escalate.escalations`` and
  ``escalate.cost`` counters, all read from the receipt, so they agree with it.

Only receipt fields (already scrubbed of keys) and the step's messages (when content is
opted in) reach an attribute; no header, client or key is ever read. Every call into
OpenTelemetry is inside ``contextlib.suppress(Exception)``: tracing never breaks a call.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from dataclasses import dataclass
from typing import Any

from escalate._trace_api import _Api
from escalate._trace_call import CallTrace

__all__ = ["CallTrace", "Settings", "begin", "configure", "settings"]

_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_CONTENT_ON = frozenset({"true", "1", "yes", "span_only", "span_and_event"})


@dataclass(frozen=True)
class Settings:
    """What :func:`configure` set; ``None`` providers mean the global ones."""

    record_content: bool | None = None
    """Record messages and answers (the conventions' opt-in attributes); ``None``: as the
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` environment variable says."""
    tracer_provider: Any = None
    meter_provider: Any = None


_settings = Settings()


def configure(
    *,
    record_content: bool | None = None,
    tracer_provider: Any = None,
    meter_provider: Any = None,
) -> None:
    """Set how escalate traces (replacing earlier settings)."""
    global _settings
    _settings = Settings(record_content, tracer_provider, meter_provider)


def settings() -> Settings:
    return _settings


def _records_content() -> bool:
    if _settings.record_content is not None:
        return _settings.record_content
    return os.environ.get(_CONTENT_ENV, "").strip().lower() in _CONTENT_ON


_api: _Api | None = None
_available: bool | None = None


def _load() -> _Api | None:
    global _api, _available
    if _available is None:
        try:
            _available = importlib.util.find_spec("opentelemetry.trace") is not None
        except (ImportError, ValueError):  # a parent blocked in sys.modules
            _available = False
        if _available:
            try:
                _api = _Api()
            except Exception:
                _available = False
    return _api


def begin(function: str) -> CallTrace | None:
    """The call's trace, or ``None`` when neither traces nor metrics are configured."""
    if _available is False:
        return None
    api = _load()
    if api is None:
        return None
    given = _settings.tracer_provider is not None or _settings.meter_provider is not None
    if not given and api.nothing_set():
        return None
    with contextlib.suppress(Exception):
        tracer_provider = _settings.tracer_provider or api.trace.get_tracer_provider()
        meter_provider = _settings.meter_provider or api.metrics.get_meter_provider()
        tracer = None
        if not isinstance(tracer_provider, api.no_tracing):
            tracer = api.tracer_of(tracer_provider)
        instruments = None
        if not isinstance(meter_provider, api.no_metrics):
            instruments = api.instruments_of(meter_provider)
        if tracer is None and instruments is None:
            return None
        return CallTrace(api, tracer, instruments, function, _records_content())
    return None
