"""Faults: does any call lose its receipt, or any request its attempt, when the provider fails?

The local provider server (``escalate.testing.ProviderServer``, both wire formats over real
HTTP on 127.0.0.1) runs in a child process and fails 5% of requests, spread evenly over
every transient kind: 429 with ``Retry-After`` in seconds and as an HTTP date, 500, 502,
503, 529, a reply slower than the tier's timeout, a connection closed before the answer and
one closed halfway through its body, and a body that is not JSON. Whether a request fails,
and how, is drawn from a hash of the seed, the call's id (in its prompt) and how many
requests that call has made, so a run replays the same faults.

The client, in this process: for openai and for anthropic, two tiers (cheap, strong), each
with one fallback deployment of another model name (so the server counts per deployment),
``Tier(timeout=...)`` and a fast ``Retry``. A tenth of the prompts get a cheap answer that
fails validation (the walk moves up: a quality failure); one in a hundred gets a bad answer
from every tier (the call raises ``AllTiersFailed``). Calls alternate between the providers:
10,000 async calls at a concurrency of 64 (one event loop, a semaphore), then 2,000 sync
calls from 32 threads. ``RuntimeWarning`` and ``ResourceWarning`` are errors throughout;
other warnings are recorded, and so are unraisable exceptions and the event loop's errors.

Printed: calls returned and raised (by type), receipts lost, the attempts on receipts against
the requests the server counted (in total, per deployment and per call, aligned request by
request, with every difference explained or flagged), what each injected fault became on the
receipts, the waits after each fault, moves, the resident memory every 1,000 calls, warnings
and the wall time. The exit status is 1 when a receipt was lost, a count differs without an
explanation, or a warning was seen.

Run: ``python benchmarks/faults.py [--calls N] [--sync-calls N] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import hashlib
import json
import re
import statistics
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from escalate import EscalationFailed, Receipt, Retry, Tier, escalating, receipt_of

SEED = 20261201
FAULT_SHARE = 0.05
TIMEOUT = 4.0  # seconds per request, on every deployment
SLOW = TIMEOUT + 0.5  # a slow reply arrives this late: past the timeout
RETRY_AFTER = 0.05  # seconds, for the 429s that say it in seconds
RETRY_AFTER_DATE = 1.0  # an HTTP date has whole seconds: this one is 0 to 1 s away
RETRY = Retry(attempts=3, initial=0.02, max=0.2, jitter=0.02, max_retry_after=5.0)

# provider -> tiers, cheapest first -> (deployment model, its fallback's model)
MODELS: dict[str, list[tuple[str, str]]] = {
    "openai": [
        ("gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
        ("gpt-4o", "gpt-4o-2024-08-06"),
    ],
    "anthropic": [
        ("claude-haiku-4-5", "claude-haiku-4-5-20251001"),
        # claude-sonnet-4-5 reached its end of life on 2026-11-30: the SDK warns on every call.
        ("claude-sonnet-4-6", "claude-opus-4-6"),
    ],
}
CHEAP_MODELS = {model for tiers in MODELS.values() for model in tiers[0]}

FAULT_KINDS = (
    "429 seconds",
    "429 date",
    "500",
    "502",
    "503",
    "529",
    "slow",
    "drop before",
    "drop halfway",
    "malformed",
)
ANSWER_KINDS = ("ok", "invalid")

HARD = "[hard]"  # the cheap tiers answer badly: a quality failure moves the call up
IMPOSSIBLE = "[impossible]"  # every tier answers badly: the call raises AllTiersFailed
CALL_ID = re.compile(r"#([abs]\d+)")


class Invoice(BaseModel):
    customer_id: str
    summary: str
    total: float


GOOD = {"customer_id": "ACME-042", "summary": "An unpaid invoice for widgets", "total": 1234.5}
BAD = {"customer_id": "ACME-042", "summary": "An unpaid invoice for widgets"}  # no total


def prompt(call_id: str, index: int) -> str:
    pair = index // 2  # calls alternate between the providers: both get every marker
    marker = " " + IMPOSSIBLE if pair % 100 == 7 else " " + HARD if pair % 10 == 3 else ""
    return f"Extract the invoice in document #{call_id}.{marker}"


def draw(call_id: str, nth: int) -> str | None:
    """The fault for the call's nth request (None: answer), from a hash: reproducible."""
    digest = hashlib.blake2b(f"{SEED}:{call_id}:{nth}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2**64
    if u >= FAULT_SHARE:
        return None
    return FAULT_KINDS[int(u / FAULT_SHARE * len(FAULT_KINDS))]


# --- the server, in its own process ------------------------------------------------------


def serve() -> None:
    """Run the provider server; print its URL, then answer one line per line read:
    ``counts`` prints the counters as one JSON line. Stops when stdin closes."""
    from escalate.testing._server import Drop, Fault, Malformed, ProviderServer, Reply, Request

    lock = threading.Lock()
    per_call: dict[str, list[tuple[str, str]]] = defaultdict(list)
    per_model: dict[str, Counter[str]] = defaultdict(Counter)

    def outcome(kind: str, data: dict[str, Any]) -> Reply | Fault | Drop | Malformed:
        faults: dict[str, Callable[[], Reply | Fault | Drop | Malformed]] = {
            "429 seconds": lambda: Fault(429, retry_after=RETRY_AFTER),
            "429 date": lambda: Fault(429, retry_after=RETRY_AFTER_DATE, retry_after_format="date"),
            "500": lambda: Fault(500),
            "502": lambda: Fault(502),
            "503": lambda: Fault(503),
            "529": lambda: Fault(529),
            "slow": lambda: Reply(data=data, delay=SLOW),
            "drop before": lambda: Drop(),
            "drop halfway": lambda: Drop(halfway=True, reply=Reply(data=data)),
            "malformed": lambda: Malformed(),
        }
        return faults[kind]() if kind in faults else Reply(data=data)

    def respond(request: Request) -> Reply | Fault | Drop | Malformed:
        text = request.last_user_text
        found = CALL_ID.search(text)
        call_id = found.group(1) if found else "?"
        bad = IMPOSSIBLE in text or (HARD in text and request.model in CHEAP_MODELS)
        data = BAD if bad else GOOD
        with lock:
            nth = len(per_call[call_id])
            kind = draw(call_id, nth) or ("invalid" if bad else "ok")
            per_call[call_id].append((request.model, kind))
            per_model[request.model][kind] += 1
        return outcome(kind, data)

    with ProviderServer(tokens="approx") as server:
        for tiers in MODELS.values():
            for pair in tiers:
                for model in pair:
                    server.respond(model, respond)
        print(server.url, flush=True)
        for line in sys.stdin:
            if line.strip() == "counts":
                with lock:
                    counts = {
                        "request_count": server.request_count,
                        "request_counts": server.request_counts,
                        "per_model": {m: dict(c) for m, c in per_model.items()},
                        "per_call": dict(per_call),
                    }
                print(json.dumps(counts), flush=True)


class Server:
    """The child process running `serve`, and its line protocol."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the server process did not start (it said {self.url!r})")

    def counts(self) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("counts\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())  # type: ignore[no-any-return]

    def stop(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        self.process.stdout.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


# --- the client side ---------------------------------------------------------------------


def tiers_for(provider: str, url: str) -> list[Tier]:
    base_url = url + "/v1" if provider == "openai" else url
    common: dict[str, Any] = {"base_url": base_url, "api_key": "sk-bench", "timeout": TIMEOUT}
    return [
        Tier(
            f"{provider}/{model}",
            fallbacks=[Tier(f"{provider}/{fallback}", **common)],
            **common,
        )
        for model, fallback in MODELS[provider]
    ]


def functions(url: str) -> dict[tuple[str, str], Callable[[str], Any]]:
    """(provider, face) -> the escalating function."""
    made: dict[tuple[str, str], Callable[[str], Any]] = {}
    for provider in MODELS:
        decorate = escalating(tiers=tiers_for(provider, url), response_model=Invoice, retry=RETRY)

        def sync_prompt(text: str) -> str:
            return text

        async def async_prompt(text: str) -> str:
            return text

        made[provider, "sync"] = decorate(sync_prompt)
        made[provider, "async"] = decorate(async_prompt)
    return made


def provider_of(index: int) -> str:
    return "openai" if index % 2 == 0 else "anthropic"


def rss_mib() -> float:
    """VmRSS of this process (Linux; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


Row = tuple[str, str, str, str | None, float, float]
"""An attempt: requested model, outcome, trigger, reason, start (epoch s), latency (s)."""


@dataclass
class Tally:
    """What every call came to, gathered as calls end (nothing of a call is kept but this)."""

    face: str
    prefix: str
    calls: int = 0
    returned: Counter[str] = field(default_factory=Counter)
    raised: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    inconsistent: list[str] = field(default_factory=list)
    unexpected: dict[str, str] = field(default_factory=dict)
    attempts: dict[str, list[Row]] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    moves: Counter[str] = field(default_factory=Counter)
    rss: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, call_id: str, index: int, value: Any, error: BaseException | None) -> None:
        expect_failure = IMPOSSIBLE in prompt(call_id, index)
        receipt: Receipt | None
        try:
            receipt = receipt_of(error if error is not None else value)
        except LookupError:
            receipt = None
        with self.lock:
            self.calls += 1
            provider = provider_of(index)
            if error is None:
                self.returned[provider] += 1
            else:
                name = type(error).__name__
                self.raised[f"{name} ({provider})"] += 1
                expected = isinstance(error, EscalationFailed) and expect_failure
                if not expected and name not in self.unexpected:
                    self.unexpected[name] = "".join(
                        traceback.format_exception(type(error), error, error.__traceback__)
                    )
            if receipt is None:
                self.lost.append(call_id)
            else:
                self._receipt(call_id, receipt, error)
            if self.calls % 1000 == 0:
                self.rss.append((self.calls, rss_mib()))

    def _receipt(self, call_id: str, receipt: Receipt, error: BaseException | None) -> None:
        want = ("answered",) if error is None else ("failed", "error")
        if receipt.outcome not in want:
            self.inconsistent.append(f"{call_id}: outcome {receipt.outcome}, raised {error!r}")
        self.outcomes[receipt.outcome] += 1
        self.attempts[call_id] = [
            (
                a.requested_model,
                a.outcome,
                a.trigger or "-",
                a.reason,
                a.started_at.timestamp(),
                a.latency_s,
            )
            for a in receipt.attempts
        ]
        for move in receipt.moves:
            self.moves[f"{move.kind} ({move.trigger})"] += 1


def run_async(
    fns: dict[tuple[str, str], Callable[[str], Any]], calls: int, limit: int, prefix: str = "a"
) -> Tally:
    tally = Tally("async", prefix)
    loop_errors: list[str] = []

    async def one(index: int, semaphore: asyncio.Semaphore) -> None:
        call_id = f"{prefix}{index}"
        try:
            value = await fns[provider_of(index), "async"](prompt(call_id, index))
        except Exception as error:
            tally.record(call_id, index, None, error)
        else:
            tally.record(call_id, index, value, None)
        finally:
            semaphore.release()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: loop_errors.append(str(context)))
        semaphore = asyncio.Semaphore(limit)
        tasks: set[asyncio.Task[None]] = set()
        for index in range(calls):
            await semaphore.acquire()  # at most `limit` calls in flight, none created early
            task = asyncio.create_task(one(index, semaphore))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*list(tasks))

    started = time.perf_counter()
    asyncio.run(main())
    tally.seconds = time.perf_counter() - started
    tally.unexpected.update({f"event loop: {e}": "" for e in loop_errors})
    return tally


def run_sync(fns: dict[tuple[str, str], Callable[[str], Any]], calls: int, threads: int) -> Tally:
    tally = Tally("sync", "s")

    def one(index: int) -> None:
        call_id = f"s{index}"
        try:
            value = fns[provider_of(index), "sync"](prompt(call_id, index))
        except Exception as error:
            tally.record(call_id, index, None, error)
        else:
            tally.record(call_id, index, value, None)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(one, range(calls)):
            pass
    tally.seconds = time.perf_counter() - started
    return tally


# --- accounting --------------------------------------------------------------------------

EXPECTED_TRIGGER = {
    "ok": ("answered", "-"),
    "invalid": ("rejected", "validation"),
    "429 seconds": ("provider_error", "rate_limit"),
    "429 date": ("provider_error", "rate_limit"),
    "500": ("provider_error", "server_error"),
    "502": ("provider_error", "server_error"),
    "503": ("provider_error", "server_error"),
    "529": ("provider_error", "overloaded"),
    "slow": ("provider_error", "timeout"),
    "drop before": ("provider_error", "connection"),
    "drop halfway": ("provider_error", "connection"),
    "malformed": ("provider_error", "bad_response"),
}


@dataclass
class Alignment:
    """The server's requests and the receipts' attempts, paired call by call."""

    pairs: Counter[tuple[str, str]] = field(default_factory=Counter)
    waits: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    unseen: list[str] = field(default_factory=list)  # attempts the server never saw: explained
    unexplained: list[str] = field(default_factory=list)


LATE = " (the busy client read it before enforcing its timeout)"
UNSEEN_TRIGGERS = ("connection", "timeout")  # a request can fail these before the server reads it


def _pair_cost(row: Row, kind: str) -> float:
    if (row[1], row[2]) == EXPECTED_TRIGGER[kind]:
        return 0.0
    if row[2] == "timeout":
        return 1.0  # the reply came, later than the client waited (a busy client)
    return 10.0  # a fault the receipt names wrongly: flagged in the table


def match(
    attempts: list[Row], served: list[tuple[str, str]]
) -> list[tuple[int, int | None]] | None:
    """Pair each attempt with the request the server saw for it, in order, at least cost;
    an attempt that failed by connection or timeout may have no request (the server never
    read it). None: no pairing accounts for every request and attempt."""

    @functools.cache
    def best(i: int, j: int) -> tuple[float, tuple[tuple[int, int | None], ...]] | None:
        if i == len(attempts):
            return (0.0, ()) if j == len(served) else None
        options: list[tuple[float, tuple[tuple[int, int | None], ...]]] = []
        if j < len(served) and served[j][0] == attempts[i][0]:
            rest = best(i + 1, j + 1)
            if rest is not None:
                options.append(
                    (_pair_cost(attempts[i], served[j][1]) + rest[0], ((i, j), *rest[1]))
                )
        if attempts[i][2] in UNSEEN_TRIGGERS:
            rest = best(i + 1, j)
            if rest is not None:
                options.append((1.0 + rest[0], ((i, None), *rest[1])))
        return min(options, key=lambda option: option[0]) if options else None

    found = best(0, 0)
    return list(found[1]) if found is not None else None


def align(tally: Tally, per_call: dict[str, list[list[str]]]) -> Alignment:
    out = Alignment()
    ids = set(tally.attempts) | {c for c in per_call if c.startswith(tally.prefix)}
    for call_id in sorted(ids):
        attempts = [a for a in tally.attempts.get(call_id, []) if a[1] != "skipped"]
        served = [(r[0], r[1]) for r in per_call.get(call_id, [])]
        if call_id not in tally.attempts:
            if call_id not in tally.lost:
                out.unexplained.append(f"{call_id}: server saw {served}, no call recorded")
            continue
        pairs = match(attempts, served)
        if pairs is None:
            out.unexplained.append(
                f"{call_id}: server saw {served}; receipt: {[(a[0], a[1], a[2]) for a in attempts]}"
            )
            continue
        for i, j in pairs:
            model, outcome, trigger, reason, started, latency = attempts[i]
            if j is None:
                out.unseen.append(f"{call_id}: {model} {trigger}: {reason}")
                continue
            kind = served[j][1]
            out.pairs[kind, f"{outcome}/{trigger}"] += 1
            if i + 1 < len(attempts) and outcome == "provider_error":
                out.waits[kind].append(attempts[i + 1][4] - (started + latency))
    return out


def note(kind: str, became: str) -> str:
    """A mark on an unexpected pairing: a slow reply read in time by a busy client, or (!)."""
    late = kind == "slow" and became in ("answered/-", "rejected/validation")
    return LATE if late else " (!)"


def phase_report(tally: Tally, counted: int, per_model: Counter[str], al: Alignment) -> list[str]:
    made = sum(1 for rows in tally.attempts.values() for a in rows if a[1] != "skipped")
    skipped = sum(1 for rows in tally.attempts.values() for a in rows if a[1] == "skipped")
    by_model: Counter[str] = Counter(
        a[0] for rows in tally.attempts.values() for a in rows if a[1] != "skipped"
    )
    attempt_kinds: Counter[str] = Counter(
        f"{a[1]}/{a[2]}" for rows in tally.attempts.values() for a in rows
    )
    lines = [
        f"calls: {tally.calls} in {tally.seconds:.1f} s ({tally.calls / tally.seconds:.0f}/s)",
        "  returned: "
        + (", ".join(f"{p} {n}" for p, n in sorted(tally.returned.items())) or "none"),
        "  raised:   " + (", ".join(f"{k} {n}" for k, n in sorted(tally.raised.items())) or "none"),
        f"  receipts lost: {len(tally.lost)}"
        + (f" (calls {', '.join(tally.lost[:10])})" if tally.lost else ""),
        "  receipt outcomes: " + ", ".join(f"{k} {n}" for k, n in sorted(tally.outcomes.items())),
    ]
    if tally.inconsistent:
        lines.append(f"  receipt outcome disagrees with the call: {tally.inconsistent[:5]}")
    lines += [
        f"requests: server counted {counted}; attempts on receipts that made a request {made}"
        f" (+{skipped} skipped); difference {counted - made}",
        f"  attempts the server never saw (a connection or timeout failure before it read them): "
        f"{len(al.unseen)}" + (f", e.g. {al.unseen[:3]}" if al.unseen else ""),
        f"  unexplained: {len(al.unexplained)}"
        + "".join(f"\n    {u}" for u in al.unexplained[:10]),
        "  per deployment (server / receipts): "
        + ", ".join(
            f"{m} {per_model[m]}/{by_model[m]}{'' if per_model[m] == by_model[m] else ' !'}"
            for m in sorted(set(per_model) | set(by_model))
        ),
        "attempts by outcome/trigger: "
        + ", ".join(f"{k} {n}" for k, n in sorted(attempt_kinds.items(), key=lambda kv: -kv[1])),
        "moves: " + (", ".join(f"{k} {n}" for k, n in sorted(tally.moves.items())) or "none"),
        "what the server sent -> what the receipt says (requests)  wait before the next "
        "attempt, s (min / median / max)",
    ]
    for kind in (*ANSWER_KINDS, *FAULT_KINDS):
        became = {k[1]: n for k, n in al.pairs.items() if k[0] == kind}
        if not became:
            continue
        expected = "/".join(EXPECTED_TRIGGER[kind])
        text = ", ".join(
            f"{t} {n}{'' if t == expected else note(kind, t)}"
            for t, n in sorted(became.items(), key=lambda kv: -kv[1])
        )
        waits = al.waits.get(kind)
        wait = (
            f"{min(waits):.3f} / {statistics.median(waits):.3f} / {max(waits):.3f}" if waits else ""
        )
        lines.append(f"  {kind:<13}{sum(became.values()):>6} -> {text:<46}{wait}")
    if tally.rss:
        series = "  ".join(f"{n}: {mib:.0f}" for n, mib in tally.rss)
        growth = tally.rss[-1][1] - tally.rss[0][1]
        lines.append(
            f"RSS MiB by calls done: {series}  (growth after the first 1,000: {growth:+.1f})"
        )
    for name, text in tally.unexpected.items():
        key = text.strip().splitlines()[-1] if text else name
        lines.append(f"unexpected: {name}: {key}")
    return lines


@dataclass
class Warnings:
    """Everything that was warned or could not be raised while the calls ran."""

    caught: list[str] = field(default_factory=list)
    unraisable: list[str] = field(default_factory=list)
    _live: list[warnings.WarningMessage] = field(default_factory=list)

    def count(self) -> int:
        return len(self._live) + len(self.unraisable)

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        previous = sys.unraisablehook

        def hook(unraisable: Any) -> None:
            self.unraisable.append(
                f"{type(unraisable.exc_value).__name__}: {unraisable.exc_value} "
                f"({unraisable.err_msg or 'unraisable'} {unraisable.object!r})"
            )

        sys.unraisablehook = hook
        with warnings.catch_warnings(record=True) as caught:
            self._live = caught
            warnings.simplefilter("always")
            warnings.simplefilter("error", RuntimeWarning)
            warnings.simplefilter("error", ResourceWarning)
            try:
                yield
            finally:
                gc.collect()
                self.caught.extend(
                    f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught
                )
                sys.unraisablehook = previous


def diff(after: dict[str, Any], before: dict[str, Any]) -> tuple[int, Counter[str]]:
    """Requests the server counted between two snapshots: in total, and per model."""
    per_model: Counter[str] = Counter()
    for model, kinds in after["per_model"].items():
        old = before["per_model"].get(model, {})
        per_model[model] = sum(kinds.values()) - sum(old.values())
    return after["request_count"] - before["request_count"], per_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000, help="async calls (10,000)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--sync-calls", type=int, default=2_000, help="sync calls (2,000)")
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument(
        "--again-calls", type=int, default=200, help="async calls on a second event loop (200)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return 0

    started = time.perf_counter()
    seen = Warnings()
    server = Server()
    phases: list[tuple[str, Tally, int, Counter[str], int]] = []
    try:
        with seen.watching():
            fns = functions(server.url)
            before = server.counts()

            def phase(label: str, run: Callable[[], Tally]) -> None:
                nonlocal before
                warned = seen.count()
                tally = run()
                gc.collect()  # let anything left unclosed say so now, in its phase
                now = server.counts()
                counted, per_model = diff(now, before)
                before = now
                phases.append((label, tally, counted, per_model, seen.count() - warned))

            phase(
                f"async: {args.calls} calls, concurrency {args.concurrency}, one event loop",
                lambda: run_async(fns, args.calls, args.concurrency),
            )
            phase(
                f"sync: {args.sync_calls} calls from {args.threads} threads",
                lambda: run_sync(fns, args.sync_calls, args.threads),
            )
            if args.again_calls:
                phase(
                    f"async again: {args.again_calls} calls on a second event loop "
                    "(a program that calls asyncio.run twice)",
                    lambda: run_async(fns, args.again_calls, args.concurrency, prefix="b"),
                )
        after = before
    finally:
        server.stop()

    print(
        f"Faults: {FAULT_SHARE:.0%} of requests fail, evenly over {len(FAULT_KINDS)} kinds "
        f"({', '.join(FAULT_KINDS)}); openai and anthropic, 2 tiers with a fallback each, "
        f"timeout {TIMEOUT} s, {RETRY}"
    )
    failed = False
    figures: dict[str, Any] = {}
    for label, tally, counted, per_model, warned in phases:
        alignment = align(tally, after["per_call"])
        print(f"\n-- {label}")
        print("\n".join(phase_report(tally, counted, per_model, alignment)))
        print(f"warnings during this phase: {warned}")
        made = sum(1 for rows in tally.attempts.values() for a in rows if a[1] != "skipped")
        explained = counted == made - len(alignment.unseen) and not alignment.unexplained
        failed |= bool(tally.lost) or not explained or bool(tally.inconsistent)
        figures[label] = {
            "calls": tally.calls,
            "seconds": tally.seconds,
            "returned": dict(tally.returned),
            "raised": dict(tally.raised),
            "receipts_lost": len(tally.lost),
            "server_requests": counted,
            "attempts_with_request": made,
            "attempts_unseen_by_server": alignment.unseen,
            "unexplained": alignment.unexplained,
            "fault_to_receipt": {f"{k} -> {v}": n for (k, v), n in alignment.pairs.items()},
            "moves": dict(tally.moves),
            "rss_mib": tally.rss,
            "warnings": warned,
            "unexpected": dict(tally.unexpected),
        }
    total = seen.caught + seen.unraisable
    serious = [t for t in total if t.startswith(("RuntimeWarning", "ResourceWarning"))]
    print(
        f"\nwarnings seen: {len(total)}, of them RuntimeWarning or ResourceWarning (errors here;"
        f" raised in a destructor they are unraisable): {len(serious)}"
    )
    shapes = Counter(re.sub(r"fd=\d+|0x[0-9a-f]+", "…", text) for text in total)
    for text, n in shapes.most_common(10):
        print(f"  {n} x {text}")
    failed |= bool(serious)
    print(
        f"server requests by path: {after['request_counts']}; "
        f"wall time {time.perf_counter() - started:.1f} s"
    )
    verdict = "FAILED: see above" if failed else "nothing lost, counts equal"
    print(f"result: {verdict}")
    figures["warnings"] = total
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
