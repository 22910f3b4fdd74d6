"""The conversation ladder against always-strong and always-light, over scripted
multi-turn conversations played by the local provider server.

Everything above the server is real: the SDKs, instructor, the call path, receipts,
genai-prices. The models are not: each reply is a deterministic text of a fixed length
for its tier, so the figures are what each strategy *sends and pays for* (history growth,
the memory's writes and injections, escalations), not how good the answers are. Answer
quality cannot be judged offline without recorded multi-turn answers of the same models.

    python benchmarks/ladder.py [--pair openai|anthropic|google|all] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from escalate import Tier
from escalate.chat import PAIRS
from escalate.conversation import Conversation, built_in_triggers
from escalate.testing._server import ProviderServer, Reply, Request

# Eight scripted conversations: framing turns first, routine continuation after, and the
# spikes the triggers are for (a changed goal, conflicting constraints, missing facts,
# security/legal/medical, deep debugging) and hard questions the light tier may decline.
CONVERSATIONS: list[list[str]] = [
    [
        "We need to redesign our billing schema for multi-currency invoices.",
        "Amounts must stay exact decimals and old invoices must stay readable.",
        "Write the migration for the invoices table.",
        "Add a column for the exchange rate.",
        "Add an index on currency.",
        "Is storing card tokens in that table a security risk?",
        "Fine. Rename the column to fx_rate.",
        "Write the rollback script.",
    ],
    [
        "Plan a blog post series on our new search feature, five posts.",
        "The audience is developers; keep each post under 800 words.",
        "Draft the outline of post one.",
        "Now the outline of post two.",
        "Actually, let's make it a single long guide instead.",
        "Merge the outlines into one.",
        "Suggest a title.",
    ],
    [
        "Help me write a Python CLI that syncs a folder to S3.",
        "It must run on Python 3.9 and use only boto3.",
        "Write the argument parser.",
        "Add a --dry-run flag.",
        "Here is the traceback I get: KeyError 'Contents' in list_objects_v2.",
        "That fixed it. Add a progress bar.",
        "Write the README section.",
        "Add a --delete flag.",
    ],
    [
        "We are choosing a queue for order events between three services.",
        "Latency must stay under 50 ms, but it must not lose a single event.",
        "Compare Kafka and RabbitMQ for that.",
        "Summarise that in a table.",
        "The peak volume is unknown, we are not sure about bursts.",
        "Assume 2,000 events per second then.",
        "Write the consumer skeleton in Go.",
    ],
    [
        "Draft an onboarding email sequence for new trial users, four emails.",
        "Friendly tone, no discounts, each under 150 words.",
        "Write email one.",
        "Write email two.",
        "Write email three.",
        "Write email four.",
        "Give each a subject line.",
    ],
    [
        "Set up the data model for a clinic appointment app.",
        "Patients, doctors, rooms; appointments are 15-minute slots.",
        "Write the SQL tables.",
        "Add a cancellation status.",
        "Can patients see their diagnosis notes in the app, is that legal under HIPAA?",
        "Add an audit log table.",
        "List the indexes we need.",
    ],
    [
        "Translate our product FAQ into German, ten questions.",
        "Keep product names in English.",
        "Translate questions one to three.",
        "Questions four to six.",
        "Questions seven to ten.",
        "Prove the word count stays within the original by ten percent.",
        "Format it as Markdown.",
    ],
    [
        "We want a caching layer in front of the pricing API.",
        "Prices change hourly; stale prices must never be shown after a change.",
        "Sketch the design.",
        "Write the Redis key scheme.",
        "We see a race condition: two workers refresh the same key at once.",
        "Write the lock around the refresh.",
        "Add metrics for hit rate.",
    ],
]

_HARD = ("prove", "proof", "theorem")
_STRONG_WORDS, _LIGHT_WORDS, _MEMORY_WORDS = 180, 150, 90


def _text(words: int, seed: str) -> str:
    base = [w.strip(".,?") for w in seed.split()] or ["ok"]
    return " ".join(base[i % len(base)] for i in range(words))


def _tool(request: Request) -> str:
    for tool in request.body.get("tools") or ():
        function = tool.get("function")
        name = function.get("name") if isinstance(function, dict) else tool.get("name")
        if name:
            return str(name)
    return ""


def _serve(server: ProviderServer, light: str, strong: str) -> None:
    def light_reply(request: Request) -> Reply:
        said = request.last_user_text
        if _tool(request).endswith("OrEscalate") and any(h in said.lower() for h in _HARD):
            return Reply(data={"escalate": {"reason": "needs a proof", "question": said}})
        return Reply(data={"answer": _text(_LIGHT_WORDS, said)})

    def strong_reply(request: Request) -> Reply:
        said = request.last_user_text
        if "Memory" in _tool(request):
            return Reply(
                data={
                    "goal": _text(14, said),
                    "constraints": [_text(10, said), _text(8, said)],
                    "assumptions": [_text(8, said)],
                    "decisions": [_text(10, said), _text(10, said)],
                    "open_questions": [_text(8, said)],
                    "output_format": _text(6, said),
                }
            )
        return Reply(data={"answer": _text(_STRONG_WORDS, said)})

    server.respond(light, light_reply)
    server.respond(strong, strong_reply)


def _tiers(server: ProviderServer, pair: str) -> tuple[Tier, Tier]:
    light, strong = PAIRS[pair]
    url = {
        "openai": server.openai_base_url,
        "anthropic": server.anthropic_base_url,
        "google": server.google_base_url,
    }[pair]
    return (
        Tier(light, base_url=url, api_key="bench", name="light"),
        Tier(strong, base_url=url, api_key="bench", name="strong"),
    )


def _run(strategy: str, light: Tier, strong: Tier, script: list[str]) -> Conversation:
    if strategy == "ladder":
        chat = Conversation(ladder=[(strong, 2), (light, None)], triggers=built_in_triggers())
    else:
        chat = Conversation(ladder=[(strong if strategy == "always-strong" else light, None)])
    for message in script:
        chat.send(message)
    chat.resolve()
    return chat


def _row(strategy: str, chats: list[Conversation]) -> dict[str, Any]:
    receipts = [c.receipt for c in chats]
    turns = sum(len(r.turns) for r in receipts)
    cost = sum((r.known_cost_usd for r in receipts), Decimal(0))
    fired: Counter[str] = Counter()
    for r in receipts:
        fired.update(r.metrics().triggers_fired)
    return {
        "strategy": strategy,
        "conversations": len(chats),
        "turns": turns,
        "requests": sum(len(t.receipt.attempts) for r in receipts for t in r.turns)
        + sum(len(m.receipt.attempts) for r in receipts for m in r.memory_updates),
        "input_tokens": sum(r.input_tokens for r in receipts),
        "output_tokens": sum(r.output_tokens for r in receipts),
        "cost_usd": cost,
        "cost_per_task_usd": cost / len(chats),
        "memory_cost_usd": sum((r.memory_cost_usd for r in receipts), Decimal(0)),
        "memory_writes": sum(len(r.memory_updates) for r in receipts),
        "handoffs": sum(len(r.handoffs) for r in receipts),
        "strong_turns": sum(t.answered_by == "strong" for r in receipts for t in r.turns),
        "escalation_frequency": (
            sum(r.metrics().escalation_frequency * len(r.turns) for r in receipts) / turns
        ),
        "triggers_fired": dict(sorted(fired.items())),
    }


def _table(pair: str, rows: list[dict[str, Any]]) -> str:
    strong_cost = next(r["cost_usd"] for r in rows if r["strategy"] == "always-strong")
    head = (
        f"{'strategy':<14}{'turns':>6}{'strong':>7}{'requests':>9}{'in tok':>9}{'out tok':>9}"
        f"{'cost USD':>11}{'per task':>10}{'vs strong':>10}{'memory USD':>11}{'handoffs':>9}"
    )
    lines = [f"pair {pair}: {' / '.join(PAIRS[pair])} (light / strong)", head]
    for r in rows:
        share = r["cost_usd"] / strong_cost if strong_cost else Decimal(0)
        lines.append(
            f"{r['strategy']:<14}{r['turns']:>6}{r['strong_turns']:>7}{r['requests']:>9}"
            f"{r['input_tokens']:>9}{r['output_tokens']:>9}{r['cost_usd']:>11.4f}"
            f"{r['cost_per_task_usd']:>10.5f}{share:>10.1%}{r['memory_cost_usd']:>11.4f}"
            f"{r['handoffs']:>9}"
        )
    ladder = next(r for r in rows if r["strategy"] == "ladder")
    fired = ", ".join(f"{k} {v}" for k, v in ladder["triggers_fired"].items()) or "none"
    lines.append(
        f"ladder: triggers fired ({ladder['turns']} turns): {fired}; escalation frequency "
        f"{ladder['escalation_frequency']:.1%}; {ladder['memory_writes']} memory writes"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", default="all", choices=[*PAIRS, "all"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    pairs = list(PAIRS) if args.pair == "all" else [args.pair]
    started, results = time.perf_counter(), {}
    with ProviderServer() as server:
        for pair in pairs:
            light, strong = _tiers(server, pair)
            _serve(server, light.model.partition("/")[2], strong.model.partition("/")[2])
            rows = [
                _row(s, [_run(s, light, strong, script) for script in CONVERSATIONS])
                for s in ("ladder", "always-strong", "always-light")
            ]
            results[pair] = rows
            print(_table(pair, rows) + "\n", flush=True)
        requests = server.request_count
    print(
        f"{len(CONVERSATIONS)} scripted conversations per strategy, {requests} requests "
        f"through the SDKs + instructor + the call path, {time.perf_counter() - started:.0f} s"
    )
    print(
        "Quality is not measured: the server's replies are fixed-length placeholders, and "
        "answer quality cannot be judged offline without recorded multi-turn answers of the "
        "same models."
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
