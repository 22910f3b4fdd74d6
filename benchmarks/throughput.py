"""Throughput: 1,000 async calls at a concurrency of 64 against the local provider server,
escalate against bare instructor with ``asyncio.gather``, calls per second side by side and
peak memory; then the same with a tenth of the calls escalating.

The server (``escalate.testing.ProviderServer``, OpenAI wire format over real HTTP on
127.0.0.1) runs in a child process, so it does not share the client's interpreter lock. It
answers ``gpt-4o-mini`` (cheap) and ``gpt-4o`` (strong) with a canned invoice; a cheap
answer to a prompt marked ``[hard]`` says ``"needs review"``, which a gate rejects.

- bare instructor: ``instructor.from_openai(openai.AsyncOpenAI(...))``; in the escalating
  run it is a hand-written cascade (ask the cheap model, check, ask the strong one);
- escalate: one ``@escalating`` async function, tiers ``[gpt-4o-mini, gpt-4o]``, the gate.

Each side runs in a fresh process of its own (one event loop, a semaphore of 64, SDK
retries off), after a warm-up of 64 calls: calls per second over the 1,000 calls, and the
process's peak resident memory (and its growth during the calls).

Run: ``python benchmarks/throughput.py [--calls N] [--concurrency C] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import instructor
import openai
from pydantic import BaseModel

from escalate import Tier, escalating, receipt_of
from escalate.gates import GateContext, Rejected

CHEAP, STRONG = "gpt-4o-mini", "gpt-4o"
HARD = "[hard]"


class Invoice(BaseModel):
    customer_id: str
    summary: str
    total: float


GOOD = {"customer_id": "ACME-042", "summary": "An unpaid invoice for widgets", "total": 1234.5}
UNSURE = {**GOOD, "summary": "needs review"}


def reviewed(invoice: Invoice, context: GateContext | None = None) -> None:
    """The gate: an answer that asks for review is not good enough."""
    if invoice.summary == "needs review":
        raise Rejected("the model asked for review")


# --- the server, in its own process ------------------------------------------------------


def serve() -> None:
    """Run the provider server until stdin closes; print its base URL first."""
    from escalate.testing._server import ProviderServer, Reply, Request

    def cheap(request: Request) -> Reply:
        return Reply(data=UNSURE if HARD in request.last_user_text else GOOD)

    with ProviderServer(tokens="approx") as server:
        server.respond(CHEAP, cheap)
        server.respond(STRONG, lambda request: Reply(data=GOOD))
        print(server.openai_base_url, flush=True)
        sys.stdin.read()


def start_server() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


# --- the two sides ------------------------------------------------------------------------


def prompt(index: int, share_hard: float) -> str:
    hard = share_hard and index % round(1 / share_hard) == 0
    return f"Extract the invoice in document {index}.{' ' + HARD if hard else ''}"


def bare_side(base_url: str) -> Callable[[str], Awaitable[Invoice]]:
    client = instructor.from_openai(
        openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=0),
        mode=instructor.Mode.TOOLS,
    )

    async def ask(model: str, text: str) -> Invoice:
        return await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": text}],
            response_model=Invoice,
            max_retries=0,
        )

    async def cascade(text: str) -> Invoice:
        answer = await ask(CHEAP, text)
        try:
            reviewed(answer)
        except Rejected:
            answer = await ask(STRONG, text)
        return answer

    return cascade


def escalate_side(base_url: str) -> Callable[[str], Awaitable[Invoice]]:
    tiers = [
        Tier(f"openai/{model}", base_url=base_url, api_key="sk-bench") for model in (CHEAP, STRONG)
    ]

    @escalating(tiers=tiers, response_model=Invoice, gates=[reviewed])
    async def extract(text: str) -> str:
        return text

    return extract


async def run(
    call: Callable[[str], Awaitable[Invoice]], calls: int, concurrency: int, share_hard: float
) -> tuple[float, list[Invoice]]:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(index: int) -> Invoice:
        async with semaphore:
            return await call(prompt(index, share_hard))

    started = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(calls)))
    return time.perf_counter() - started, list(results)


def _rss_mib() -> float:
    """The resident set size of this process now (Linux; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * resource.getpagesize() / 2**20


async def one_side(side: str, base_url: str, calls: int, concurrency: int, share: float) -> Any:
    """One side, one run, in this (fresh) process: calls/s and memory."""
    call = bare_side(base_url) if side == "bare instructor" else escalate_side(base_url)
    await run(call, concurrency, concurrency, share)  # warm up: connections, schemas, prices
    gc.collect()
    before = _rss_mib()
    seconds, results = await run(call, calls, concurrency, share)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    assert all(r.summary == GOOD["summary"] for r in results), side
    escalated = sum(receipt_of(r).escalated for r in results) if side == "escalate" else None
    return {
        "seconds": seconds,
        "calls_per_s": calls / seconds,
        "peak_rss_mib": peak,
        "rss_growth_mib": max(peak - before, 0.0),
        "escalated": escalated,
    }


def measure(base_url: str, calls: int, concurrency: int) -> dict[str, Any]:
    """Each side and share in its own process, one after the other: the sides share no
    interpreter, heap or connection pool, and a process's peak memory is its own."""
    out: dict[str, Any] = {"calls": calls, "concurrency": concurrency, "runs": {}}
    for share in (0.0, 0.1):
        label = "none escalating" if not share else f"{share:.0%} escalating"
        row: dict[str, Any] = {}
        for side in ("bare instructor", "escalate"):
            argv = [sys.executable, __file__, "--side", side, "--base-url", base_url]
            argv += ["--calls", str(calls), "--concurrency", str(concurrency)]
            argv += ["--share", str(share)]
            done = subprocess.run(argv, capture_output=True, text=True, check=True)
            row[side] = json.loads(done.stdout.strip().splitlines()[-1])
        row["ratio"] = row["escalate"]["calls_per_s"] / row["bare instructor"]["calls_per_s"]
        row["peak_rss_difference_mib"] = (
            row["escalate"]["peak_rss_mib"] - row["bare instructor"]["peak_rss_mib"]
        )
        out["runs"][label] = row
    return out


def report(result: dict[str, Any]) -> str:
    lines = [
        f"Throughput: {result['calls']} async calls, concurrency {result['concurrency']}, "
        "against the local provider server (own process, real HTTP on 127.0.0.1)",
        "",
        f"{'':<18}{'side':<18}{'calls/s':>9}{'seconds':>9}{'peak RSS':>10}{'growth':>8}"
        f"{'escalated':>11}",
    ]
    for label, row in result["runs"].items():
        for name in ("bare instructor", "escalate"):
            side = row[name]
            escalated = "-" if side["escalated"] is None else str(side["escalated"])
            lines.append(
                f"{label:<18}{name:<18}{side['calls_per_s']:>9.0f}{side['seconds']:>9.2f}"
                f"{side['peak_rss_mib']:>10.1f}{side['rss_growth_mib']:>8.1f}{escalated:>11}"
            )
        lines.append(f"{'':<18}{'escalate / bare':<18}{row['ratio']:>9.2f}")
        lines.append(
            f"{'':<18}peak RSS: bare instructor {row['bare instructor']['peak_rss_mib']:.1f} MiB, "
            f"escalate {row['escalate']['peak_rss_mib']:.1f} MiB, "
            f"difference {row['peak_rss_difference_mib']:+.1f} MiB"
        )
    lines.append(
        "peak RSS: the side's process at its peak (MiB; the same libraries are loaded on both "
        "sides); growth: the peak over the resident size just before the timed calls"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--share", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return 0
    if args.side:
        figures = asyncio.run(
            one_side(args.side, args.base_url, args.calls, args.concurrency, args.share)
        )
        print(json.dumps(figures))
        return 0
    started = time.perf_counter()
    process, base_url = start_server()
    try:
        result = measure(base_url, args.calls, args.concurrency)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)
    print(report(result))
    print(f"({time.perf_counter() - started:.1f} s)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
