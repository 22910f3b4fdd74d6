"""The opentelemetry API and escalate's instruments, loaded once on the first traced call."""

from __future__ import annotations

import contextlib
import os
from typing import Any

__all__ = ["_Api", "_Instruments"]

_SCOPE = "escalate"
# The conventions' advised bucket boundaries for the two GenAI client histograms.
_TOKEN_BUCKETS = tuple(4**i for i in range(14))
_DURATION_BUCKETS = tuple(0.01 * 2**i for i in range(14))


class _Api:
    """The opentelemetry modules and the instruments, loaded on the first traced call."""

    def __init__(self) -> None:
        from opentelemetry import context, metrics, trace

        self.context = context
        self.trace = trace
        self.metrics = metrics
        self.no_tracing = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
        self.no_metrics: tuple[type, ...] = (metrics.NoOpMeterProvider,)
        with contextlib.suppress(ImportError):  # the API's default, until one is set
            from opentelemetry.metrics._internal import _ProxyMeterProvider

            self.no_metrics = (_ProxyMeterProvider, metrics.NoOpMeterProvider)
        self.tracer: tuple[Any, Any] | None = None
        self.instruments: tuple[Any, _Instruments] | None = None
        # The API keeps the providers set by set_tracer_provider / set_meter_provider in
        # module globals; reading them is a tenth of the cost of get_tracer_provider(),
        # which looks at the environment each time. A provider named in the environment
        # (OTEL_PYTHON_*_PROVIDER) is loaded by the getters, so then they are asked.
        self.metrics_globals: Any = None
        with contextlib.suppress(ImportError):
            from opentelemetry.metrics import _internal as metrics_globals

            self.metrics_globals = metrics_globals
        self.quick = (
            hasattr(trace, "_TRACER_PROVIDER")
            and hasattr(self.metrics_globals, "_METER_PROVIDER")
            and "OTEL_PYTHON_TRACER_PROVIDER" not in os.environ
            and "OTEL_PYTHON_METER_PROVIDER" not in os.environ
        )

    def nothing_set(self) -> bool:
        """No provider was set in code or the environment: the API's no-op defaults."""
        return (
            self.quick
            and self.trace._TRACER_PROVIDER is None
            and self.metrics_globals._METER_PROVIDER is None
        )

    def tracer_of(self, provider: Any) -> Any:
        cached = self.tracer
        if cached is not None and cached[0] is provider:
            return cached[1]
        from escalate import __version__

        tracer = provider.get_tracer(_SCOPE, __version__)
        self.tracer = (provider, tracer)
        return tracer

    def instruments_of(self, provider: Any) -> _Instruments:
        cached = self.instruments
        if cached is not None and cached[0] is provider:
            return cached[1]
        instruments = _Instruments(provider)
        self.instruments = (provider, instruments)
        return instruments


class _Instruments:
    def __init__(self, provider: Any) -> None:
        from escalate import __version__

        meter = provider.get_meter(_SCOPE, __version__)
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.calls = meter.create_counter(
            "escalate.calls", unit="{call}", description="Calls of escalating functions."
        )
        self.escalations = meter.create_counter(
            "escalate.escalations",
            unit="{escalation}",
            description="Moves up a tier, by trigger and gate.",
        )
        self.cost = meter.create_counter(
            "escalate.cost", unit="USD", description="Known cost of the requests, in USD."
        )
