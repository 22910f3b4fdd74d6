"""The receipt store's cost per call, and its write throughput.

Per call: two ``@escalating`` functions with the same real tier (the openai SDK and
instructor against escalate's local ``ProviderServer`` over HTTP on 127.0.0.1), one of
them writing its receipts to a SQLite store (``configure(store=..., functions=[...])``),
the other not. They run in the same process in alternating blocks of ``--block`` calls
(the order swapped every round), so drift and caches hit both alike. Reported: the median
call with the store and without, their ratio (the aim: under 5%), and the wall time per
call of a whole block *including* the flush of its receipts (what the writer thread costs,
amortised).

Throughput: ``--receipts`` real receipts (of the calls above) written with
``Store.write`` in batches of 500, to SQLite and, when ``ESCALATE_TEST_POSTGRES`` names a
server, to PostgreSQL: receipts per second.

Run: ``python benchmarks/store.py [--calls N] [--block B] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import escalate
from escalate import Receipt, Tier, escalating
from escalate._receipt import new_receipt_id
from escalate.store import Store
from escalate.testing import FunctionTier, ProviderServer, Reply

MODEL = "gpt-4o-mini"


class Invoice(BaseModel):
    customer_id: str
    total: float


def _solver(server: ProviderServer | None, name: str) -> Callable[[str], Invoice]:
    tier: Any
    if server is None:  # no HTTP at all: the worst case for the store's share
        tier = FunctionTier("fake", lambda m: {"customer_id": "ACME", "total": 1234.5})
    else:
        tier = Tier(f"openai/{MODEL}", base_url=server.openai_base_url, api_key="-")

    def prompt(text: str) -> str:
        return f"Extract the invoice in: {text}"

    prompt.__name__ = prompt.__qualname__ = name
    return escalating(tiers=[tier], response_model=Invoice)(prompt)


def _block(solve: Callable[[str], Invoice], calls: int, times: list[float]) -> None:
    for i in range(calls):
        started = time.perf_counter()
        solve(f"ACME-{i:03d} owes $1,234.50.")
        times.append(time.perf_counter() - started)


def per_call(calls: int, block: int, url: str, *, http: bool = True) -> dict[str, Any]:
    with ProviderServer() as server:
        server.respond(MODEL, lambda request: Reply(data={"customer_id": "ACME", "total": 1234.5}))
        where = server if http else None
        suffix = "" if http else "_fake"
        stored = _solver(where, "with_store" + suffix)
        plain = _solver(where, "without_store" + suffix)
        escalate.configure(store=url, functions=[stored])
        for solve in (stored, plain):  # warm-up: clients, schema, the store's creation
            _block(solve, 50, [])
        escalate.flush()
        on: list[float] = []
        off: list[float] = []
        on_wall = off_wall = 0.0
        for round_ in range(max(calls // block, 1)):
            order = [(stored, on), (plain, off)]
            for solve, times in order if round_ % 2 == 0 else reversed(order):
                gc.collect()
                started = time.perf_counter()
                _block(solve, block, times)
                if solve is stored:
                    escalate.flush()
                    on_wall += time.perf_counter() - started
                else:
                    off_wall += time.perf_counter() - started
        (stats,) = escalate.store_stats()
        escalate.configure(store=None, functions=[stored])
    median_on, median_off = statistics.median(on), statistics.median(off)
    return {
        "calls_each": len(on),
        "median_with_store_ms": median_on * 1000,
        "median_without_store_ms": median_off * 1000,
        "median_ratio": median_on / median_off,
        "block_per_call_with_store_ms": on_wall / len(on) * 1000,
        "block_per_call_without_store_ms": off_wall / len(off) * 1000,
        "block_ratio": (on_wall / len(on)) / (off_wall / len(off)),
        "written": stats.written,
        "failed": stats.failed,
        "dropped": stats.dropped,
    }


def _receipts(url: str, count: int) -> list[Receipt]:
    template = next(Store(url).receipts())
    return [template.model_copy(update={"id": new_receipt_id()}) for _ in range(count)]


def throughput(url: str, receipts: list[Receipt], batch: int = 500) -> float:
    store = Store(url)
    store.schema_version()
    started = time.perf_counter()
    for i in range(0, len(receipts), batch):
        store.write(receipts[i : i + batch])
    elapsed = time.perf_counter() - started
    assert store.count() >= len(receipts)
    store.close()
    return len(receipts) / elapsed


def _print(pc: dict[str, Any], what: str) -> None:
    print(
        f"per call ({pc['calls_each']} calls each side, {what}):\n"
        f"  median without the store  {pc['median_without_store_ms']:.3f} ms\n"
        f"  median with the store     {pc['median_with_store_ms']:.3f} ms  "
        f"(x{pc['median_ratio']:.3f}, {100 * (pc['median_ratio'] - 1):+.1f}%)\n"
        f"  block wall per call, flush included: {pc['block_per_call_without_store_ms']:.3f} ms "
        f"-> {pc['block_per_call_with_store_ms']:.3f} ms ({100 * (pc['block_ratio'] - 1):+.1f}%)\n"
        f"  receipts written {pc['written']}, failed {pc['failed']}, dropped {pc['dropped']}"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2_000, help="calls per side")
    parser.add_argument("--block", type=int, default=200, help="calls per block")
    parser.add_argument("--receipts", type=int, default=10_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="escalate-bench-store-"))
    url = f"sqlite:///{folder / 'calls.db'}"
    result: dict[str, Any] = {
        "per_call": per_call(args.calls, args.block, url),
        "per_call_fake_tier": per_call(args.calls, args.block, url, http=False),
    }
    for key, what in (
        ("per_call", "real SDK and instructor to a local server over HTTP"),
        ("per_call_fake_tier", "an in-process fake tier, no HTTP: the worst case"),
    ):
        _print(result[key], what)
    receipts = _receipts(url, args.receipts)
    targets = {"sqlite": f"sqlite:///{folder / 'throughput.db'}"}
    if os.environ.get("ESCALATE_TEST_POSTGRES"):
        targets["postgresql"] = os.environ["ESCALATE_TEST_POSTGRES"]
    result["throughput_receipts_per_s"] = {}
    for name, target in targets.items():
        rate = throughput(target, receipts)
        result["throughput_receipts_per_s"][name] = rate
        print(f"write throughput, {name}: {rate:,.0f} receipts/s (batches of 500)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
