"""Overhead: the time escalate adds to one call over a bare instructor call of the same tier.

Both sides talk to the same in-process transport (``httpx2.MockTransport`` returning one
canned OpenAI tool-call completion), with the same SDK and instructor configuration, in
the same process, interleaved call by call (the order alternating) so that drift, caches
and the garbage collector hit both alike. Reported: the median and 90th percentile of each
side, escalate's median minus the bare median (the overhead), and their ratio.

Sides:

- ``raw SDK``: ``openai.OpenAI().chat.completions.create`` with the tool schema built once
  (no instructor): what a call costs without any structured-output library;
- ``bare instructor``: ``instructor.from_openai(client).chat.completions.create(
  response_model=...)``, the call a user of instructor writes;
- ``instructor, prepared``: the same call with the response model passed through
  instructor's ``prepare_response_model`` once, up front: what instructor costs when the
  subclass and schema it otherwise rebuilds on every call are cached (what escalate could
  do per plan);
- ``escalate``: an ``@escalating`` function with that one tier (priced by genai-prices,
  receipt attached);
- ``escalate + gate``: the same with one mechanical gate that records a score;
- ``escalate, traced``: the ``escalate`` side with an OpenTelemetry SDK ``TracerProvider``
  (a ``SimpleSpanProcessor`` into an ``InMemorySpanExporter``) given to
  ``escalate.tracing.configure``: a call span and a request span per call, exported;
- ``escalate, traced+metrics``: the same with a ``MeterProvider`` and an
  ``InMemoryMetricReader`` too. The ``escalate`` side is the same function with no provider
  configured while ``opentelemetry`` is importable: tracing off. (Skipped without
  ``opentelemetry-sdk``.)

Then cProfile runs escalate alone and splits its time: what instructor's call costs inside
escalate, and where the rest (escalate's own share) goes, function by function.

Run: ``python benchmarks/overhead.py [--calls N] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import instructor
import openai
from pydantic import BaseModel

from escalate import Tier, escalating, receipt_of
from escalate.gates import GateContext

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Extract the invoice in: ACME-042 owes $1,234.50."}]


class Invoice(BaseModel):
    customer_id: str
    summary: str
    total: float


ANSWER = {"customer_id": "ACME-042", "summary": "An unpaid invoice for widgets", "total": 1234.5}
COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "logprobs": None,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "Invoice", "arguments": json.dumps(ANSWER)},
                        }
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
    }
).encode()


def _respond(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, content=COMPLETION, headers={"content-type": "application/json"})


def sdk_client() -> openai.OpenAI:
    """One SDK client on the in-process transport; each side gets its own, built alike."""
    transport = httpx2.MockTransport(_respond)
    return openai.OpenAI(
        api_key="sk-bench", http_client=httpx2.Client(transport=transport), max_retries=0
    )


def summary_length(invoice: Invoice, context: GateContext) -> float:
    """A mechanical gate that records a score and passes."""
    return len(invoice.summary) / 100


def build_sides() -> dict[str, Callable[[], Any]]:
    raw: Any = sdk_client()
    schema: Any = instructor.openai_schema(Invoice)
    tools = [{"type": "function", "function": schema.openai_schema}]
    choice = {"type": "function", "function": {"name": "Invoice"}}

    def raw_sdk() -> Any:
        completion = raw.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            tools=tools,
            tool_choice=choice,
        )
        arguments = completion.choices[0].message.tool_calls[0].function.arguments
        return Invoice.model_validate_json(arguments)

    bare_client = instructor.from_openai(sdk_client(), mode=instructor.Mode.TOOLS)

    def bare() -> Invoice:
        return bare_client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,  # type: ignore[arg-type]
            response_model=Invoice,
            max_retries=0,
        )

    from instructor.v2.core.response_model import prepare_response_model

    prepared_model: Any = prepare_response_model(Invoice)

    def prepared() -> Any:
        return bare_client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,  # type: ignore[arg-type]
            response_model=prepared_model,
            max_retries=0,
        )

    @escalating(tiers=[Tier(f"openai/{MODEL}", client=sdk_client())], response_model=Invoice)
    def extract(text: str) -> str:
        return MESSAGES[0]["content"]

    @escalating(
        tiers=[Tier(f"openai/{MODEL}", client=sdk_client())],
        response_model=Invoice,
        gates=[summary_length],
    )
    def extract_gated(text: str) -> str:
        return MESSAGES[0]["content"]

    return {
        "raw SDK": raw_sdk,
        "bare instructor": bare,
        "instructor, prepared": prepared,
        "escalate": lambda: extract("doc"),
        "escalate + gate": lambda: extract_gated("doc"),
        **traced_sides(lambda: extract("doc")),
    }


def traced_sides(call: Callable[[], Any]) -> dict[str, Callable[[], Any]]:
    """The escalate side with tracing on: the SDK's providers, in-memory, for its calls."""
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError:
        return {}
    import escalate._tracing as tracing

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    off = tracing.Settings()
    traced = tracing.Settings(tracer_provider=tracer_provider)
    measured = tracing.Settings(tracer_provider=tracer_provider, meter_provider=meter_provider)

    def with_settings(settings: tracing.Settings) -> Callable[[], Any]:
        def run() -> Any:
            tracing._settings = settings  # one attribute store each way: no configure() cost
            try:
                return call()
            finally:
                tracing._settings = off
                exporter.clear()

        return run

    return {
        "escalate, traced": with_settings(traced),
        "escalate, traced+metrics": with_settings(measured),
    }


def interleaved(sides: dict[str, Callable[[], Any]], calls: int) -> dict[str, list[float]]:
    """Seconds per call of each side, the sides taking turns in a rotating order."""
    names = list(sides)
    times: dict[str, list[float]] = {name: [] for name in names}
    clock = time.perf_counter
    for index in range(calls):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            fn = sides[name]
            started = clock()
            fn()
            times[name].append(clock() - started)
    return times


def _us(seconds: float) -> float:
    return seconds * 1e6


def measure(calls: int) -> dict[str, Any]:
    sides = build_sides()
    # Warm up: imports, clients, genai-prices' table, instructor's caches.
    interleaved(sides, 100)
    check = sides["escalate"]()
    receipt = receipt_of(check)
    assert receipt.cost_usd is not None and receipt.answered_by == f"openai/{MODEL}"
    gc.collect()
    times = interleaved(sides, calls)
    result: dict[str, Any] = {"calls_per_side": calls, "sides": {}}
    for name, values in times.items():
        ordered = sorted(values)
        result["sides"][name] = {
            "median_us": _us(statistics.median(ordered)),
            "p90_us": _us(ordered[int(len(ordered) * 0.9)]),
            "mean_us": _us(statistics.fmean(ordered)),
        }
    bare = result["sides"]["bare instructor"]["median_us"]
    for name in ("instructor, prepared", "escalate", "escalate + gate", *TRACED):
        if name not in result["sides"]:
            continue
        side = result["sides"][name]
        side["overhead_us"] = side["median_us"] - bare
        side["ratio"] = side["median_us"] / bare
    raw = result["sides"]["raw SDK"]["median_us"]
    result["sides"]["bare instructor"]["overhead_over_raw_us"] = bare - raw
    # The same difference, paired call by call (robust to drift between the sides).
    pairs = [e - b for e, b in zip(times["escalate"], times["bare instructor"], strict=True)]
    result["paired_median_overhead_us"] = _us(statistics.median(pairs))
    # Tracing on against off: the same function, the same run, paired call by call.
    result["tracing"] = {}
    off = result["sides"]["escalate"]["median_us"]
    for name in TRACED:
        if name in times:
            paired = [t - e for t, e in zip(times[name], times["escalate"], strict=True)]
            result["tracing"][name] = {
                "off_median_us": off,
                "on_median_us": result["sides"][name]["median_us"],
                "difference_us": result["sides"][name]["median_us"] - off,
                "paired_median_difference_us": _us(statistics.median(paired)),
            }
    return result


TRACED = ("escalate, traced", "escalate, traced+metrics")


# --- the profile --------------------------------------------------------------------------

_PACKAGE = str(Path(__file__).resolve().parent.parent / "escalate")


def _ours(key: tuple[str, int, str]) -> bool:
    return key[0].startswith(_PACKAGE)


def _name(key: tuple[str, int, str]) -> str:
    path, line, func = key
    if _ours(key):
        return f"escalate/{path[len(_PACKAGE) + 1 :]}:{line} {func}"
    short = path.split("site-packages/")[-1] if "site-packages/" in path else path
    return f"{short}:{line} {func}"


def profile(calls: int) -> dict[str, Any]:
    """Where escalate's own time goes, from cProfile over ``calls`` escalate calls.

    cProfile slows every Python call alike, so read the figures as shares, not as times.
    """
    extract = build_sides()["escalate"]
    for _ in range(50):
        extract()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        extract()
    profiler.disable()
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]

    def per_call(seconds: float) -> float:
        return _us(seconds / calls)

    total = max(ct for (_, _, _, ct, _) in stats.values())
    instructor_call = sum(
        ct
        for key, (_, _, _, ct, callers) in stats.items()
        if key[2] == "create_with_completion" and any(_ours(c) for c in callers)
    )
    own = sorted(
        (
            (per_call(ct), per_call(tt), _name(key))
            for key, (_, _, tt, ct, _) in stats.items()
            if _ours(key)
        ),
        reverse=True,
    )
    # Functions of other packages that escalate calls directly, other than instructor's call.
    external: dict[str, float] = {}
    for key, (_, _, _, _, callers) in stats.items():
        if _ours(key) or key[2] == "create_with_completion":
            continue
        spent = sum(entry[3] for caller, entry in callers.items() if _ours(caller))
        if spent:
            external[_name(key)] = external.get(_name(key), 0.0) + per_call(spent)
    return {
        "profiled_calls": calls,
        "total_us_per_call_profiled": per_call(total),
        "instructor_call_us_per_call_profiled": per_call(instructor_call),
        "escalate_share_us_per_call_profiled": per_call(total - instructor_call),
        "escalate_functions_cumulative": [
            {"function": name, "cumulative_us": cum, "own_us": tot} for cum, tot, name in own[:22]
        ],
        "called_by_escalate": [
            {"function": name, "cumulative_us": us}
            for name, us in sorted(external.items(), key=lambda kv: -kv[1])[:14]
        ],
    }


def report(result: dict[str, Any], prof: dict[str, Any]) -> str:
    lines = [
        f"Overhead: {result['calls_per_side']} calls per side, interleaved, in-process transport "
        "(httpx2.MockTransport), one canned OpenAI tool-call completion",
        "",
        f"{'':<26}{'median us':>11}{'p90 us':>10}{'over bare':>11}{'ratio':>8}",
    ]
    for name, side in result["sides"].items():
        over = f"{side['overhead_us']:>+11.0f}" if "overhead_us" in side else f"{'':>11}"
        ratio = f"{side['ratio']:>8.3f}" if "ratio" in side else f"{'':>8}"
        lines.append(f"{name:<26}{side['median_us']:>11.0f}{side['p90_us']:>10.0f}{over}{ratio}")
    esc = result["sides"]["escalate"]
    met = "MET" if esc["overhead_us"] < 100 or esc["ratio"] < 1 else "NOT MET"
    lines += [
        "",
        f"escalate adds {esc['overhead_us']:.0f} us to the median call "
        f"(paired per call: {result['paired_median_overhead_us']:.0f} us), x{esc['ratio']:.3f} "
        f"the bare instructor call; aim (< 100 us, or faster than the bare call): {met}",
        f"instructor itself adds "
        f"{result['sides']['bare instructor']['overhead_over_raw_us']:.0f} us over the raw SDK "
        "call with a prebuilt tool schema; with the response model prepared once it costs "
        f"{-result['sides']['instructor, prepared']['overhead_us']:.0f} us less than the bare "
        "call: caching that per plan would more than pay for escalate's overhead",
        "",
        *_tracing_lines(result),
        f"Profile ({prof['profiled_calls']} escalate calls under cProfile, which inflates "
        "every figure; read them as shares):",
        f"  a call: {prof['total_us_per_call_profiled']:.0f} us, of which instructor's "
        f"create_with_completion {prof['instructor_call_us_per_call_profiled']:.0f} us and "
        f"escalate's own share {prof['escalate_share_us_per_call_profiled']:.0f} us",
        "  escalate's functions by cumulative time (us per call, cumulative / own):",
    ]
    for entry in prof["escalate_functions_cumulative"]:
        lines.append(
            f"    {entry['cumulative_us']:>8.1f} {entry['own_us']:>7.1f}  {entry['function']}"
        )
    lines.append("  other packages' functions escalate calls directly (cumulative us per call):")
    for entry in prof["called_by_escalate"]:
        lines.append(f"    {entry['cumulative_us']:>8.1f}  {entry['function']}")
    return "\n".join(lines)


def _tracing_lines(result: dict[str, Any]) -> list[str]:
    if not result["tracing"]:
        return ["tracing: opentelemetry-sdk is not installed, so tracing on was not measured", ""]
    lines = ["Tracing, per call, in the same run (off: no provider configured):"]
    for name, figures in result["tracing"].items():
        lines.append(
            f"  {name}: off {figures['off_median_us']:.0f} us, on "
            f"{figures['on_median_us']:.0f} us: {figures['difference_us']:+.0f} us "
            f"(paired per call: {figures['paired_median_difference_us']:+.0f} us)"
        )
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls per side (default 1000)")
    parser.add_argument("--profile-calls", type=int, default=300)
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = measure(args.calls)
    prof = profile(args.profile_calls)
    print(report(result, prof))
    print(f"({time.perf_counter() - started:.1f} s)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({**result, "profile": prof}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
