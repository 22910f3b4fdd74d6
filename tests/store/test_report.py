"""The report's figures on the demo's receipts equal those computed directly from the
receipts, over SQLite and PostgreSQL; its outputs (table, JSON, CSV, the command)."""

from __future__ import annotations

import io
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import genai_prices
import pytest

import escalate
from escalate import Receipt, receipt_of
from escalate._sinks import add_sink, remove_sink
from escalate.cli import main
from escalate.demo import CASCADE, STRONG, run_demo
from escalate.store import Filters, Store, build_report, print_report, report_csv, report_json
from escalate.store._rows import path_of
from tests.store.test_store import make_solver

FUNCTION = f"escalate.demo.{CASCADE}"


@pytest.fixture
def demo(store_url: str) -> Iterator[tuple[Store, list[Receipt]]]:
    """The demo run with a store; the cascade's receipts as the calls returned them."""
    seen: list[Receipt] = []

    def keep(receipt: Receipt) -> None:
        if receipt.function == FUNCTION:
            seen.append(receipt)

    add_sink(keep)
    try:
        out = io.StringIO()
        run_demo(30, out=out, verbose=False, store=store_url)
    finally:
        remove_sink(keep)
    assert "The cascade's receipts are in" in out.getvalue()
    store = Store(store_url)
    yield store, seen
    store.close()


def _nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * q / 100)) - 1]


def test_the_report_equals_the_receipts(demo: tuple[Store, list[Receipt]]) -> None:
    store, receipts = demo
    report = build_report(store)
    assert len(receipts) == 30
    total = report.total
    assert total.calls == len(receipts)
    assert total.escalated == sum(r.escalated for r in receipts) > 0
    assert total.answered_by == dict(
        Counter(r.answered_by for r in receipts if r.outcome == "answered")
    )
    assert total.failed == sum(r.outcome in ("failed", "error", "cancelled") for r in receipts)
    assert total.known_cost_usd == sum((r.known_cost_usd for r in receipts), Decimal(0))

    by_path: dict[str, list[Receipt]] = defaultdict(list)
    for r in receipts:
        by_path[path_of(r)].append(r)
    assert {p.path for p in report.paths} == set(by_path) == {"mixtral", "mixtral>gpt-4"}
    for row in report.paths:
        members = by_path[row.path]
        assert row.calls == len(members)
        assert row.known_cost_usd == sum((r.known_cost_usd for r in members), Decimal(0))
        latencies = [r.latency_s for r in members]
        assert row.latency_p50_s == pytest.approx(_nearest_rank(latencies, 50))
        assert row.latency_p99_s == pytest.approx(_nearest_rank(latencies, 99))

    rejections = Counter(
        a.gate for r in receipts for a in r.attempts if a.outcome == "rejected" and a.gate
    )
    assert {g.key: g.rejections for g in report.gates} == dict(rejections)
    # Reasons are counted by kind: the gate's prefix dropped, up to the first colon, digits
    # as N ("wrong arithmetic"), so 30 different arithmetic slips are one reason.
    kinds: Counter[tuple[str, str | None, str]] = Counter()
    for r in receipts:
        for m in r.moves:
            if m.kind == "up":
                text = m.reason.removeprefix(f"{m.gate}:").strip()
                kinds[(m.trigger, m.gate, re.sub(r"\d+(?:[.,]\d+)*", "N", text.split(":")[0]))] += 1
    assert {(x.trigger, x.gate, x.reason): x.count for x in report.reasons} == dict(kinds)
    assert report.reasons[0].count == max(kinds.values())

    # The demo's user judged every answer against the gold one: quality by tier.
    quality = {q.tier: q for q in report.quality}
    for tier, q in quality.items():
        mine = [r for r in receipts if r.answered_by == tier]
        assert q.answers == len(mine) == q.rated_good + q.rated_bad

    (saving,) = report.savings
    assert saving.strongest_tier == "gpt-4" and saving.price_source == "genai-prices"
    estimate = Decimal(0)
    cheap = Decimal(0)
    for r in receipts:
        first = r.attempts[0]
        usage = genai_prices.Usage(
            input_tokens=first.input_tokens, output_tokens=first.output_tokens
        )
        estimate += Decimal(
            genai_prices.calc_price(usage, STRONG, provider_id="openai").total_price
        )
        cheap += sum(
            (a.cost_usd or Decimal(0) for a in r.attempts if a.tier != "gpt-4"), Decimal(0)
        )
    assert saving.always_strongest_usd == estimate
    assert saving.actual_usd == total.known_cost_usd
    assert saving.saving_usd == estimate - total.known_cost_usd > 0
    assert saving.break_even_rate == pytest.approx(float(1 - cheap / estimate))
    assert saving.escalation_rate == pytest.approx(total.escalated / total.calls)


def test_the_outputs_say_the_saving_is_an_estimate(demo: tuple[Store, list[Receipt]]) -> None:
    store, receipts = demo
    report = build_report(store, Filters(function=CASCADE, task="gsm8k"))
    data = json.loads(report_json(report))
    assert data["total"]["calls"] == len(receipts)
    assert Decimal(data["total"]["known_cost_usd"]) == report.total.known_cost_usd
    assert data["savings_method"].startswith("Estimate:")
    csv_text = report_csv(report)
    for section in ("# Total", "# By function", "# By path", "# Gates", "# Saving against"):
        assert section in csv_text
    assert "# Estimate:" in csv_text
    table = io.StringIO()
    print_report(report, table)
    assert "Saving against always-strongest (estimate)" in table.getvalue()
    assert "Estimate:" in table.getvalue()
    assert build_report(store, Filters(task="other")).total.calls == 0


def test_the_report_command(demo: tuple[Store, list[Receipt]], capsys: Any) -> None:
    store, receipts = demo
    assert main(["report", "--store", store.url, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"]["calls"] == len(receipts)
    assert main(["report", "--store", store.url, "--since", "1h"]) == 0
    assert "escalate report" in capsys.readouterr().out
    # The demo escalates 20-30% of its calls: above a 10% ceiling, within 50%.
    args = ["report", "--store", store.url, "--check", "--min-calls", "5", "--format", "csv"]
    assert main([*args, "--ceiling", "0.1"]) == 1
    assert "ALERT escalation_ceiling" in capsys.readouterr().err
    assert main([*args, "--ceiling", "0.5"]) == 0


def test_filters_by_tag_function_and_window(store_url: str, use_store: Callable[..., None]) -> None:
    solve, other = make_solver(tags={"team": "a"}), make_solver("other")
    use_store(store_url)
    for q in ["easy", "hard", "hard"]:
        solve(q)
    with escalate.options(tags={"team": "b"}):
        solve("hard")
    other("easy")
    assert escalate.flush()
    store = Store(store_url)
    assert build_report(store, Filters(tags={"team": "a"})).total.calls == 3
    assert build_report(store, Filters(tags={"team": "b"})).total.escalated == 1
    assert build_report(store, Filters(function="other")).total.calls == 1
    later = receipt_of(other("easy")).started_at
    assert build_report(store, Filters(since=later)).total.calls == 0
    store.close()


def test_quality_by_tier_from_feedback_and_regenerations(
    store_url: str, use_store: Callable[..., None]
) -> None:
    solve = make_solver()
    use_store(store_url)
    good, bad = solve("easy"), solve("easy")
    escalate.feedback(good, good=True)
    escalate.feedback(bad, good=False, reason="wrong")
    regenerated = solve("hard easy")  # answered by strong
    with escalate.options(reason="regenerate"):  # linked to the call before it
        solve("easy")
    explicit = solve("easy")
    with escalate.options(regenerates=receipt_of(explicit).id):
        solve("easy")
    assert escalate.flush()
    store = Store(store_url)
    quality = {q.tier: q for q in build_report(store).quality}
    assert receipt_of(regenerated).answered_by == "strong"
    assert (quality["cheap"].rated_good, quality["cheap"].rated_bad) == (1, 1)
    assert quality["cheap"].regenerated == 1 and quality["strong"].regenerated == 1
    assert quality["cheap"].bad_share == pytest.approx(2 / 3)
    store.close()


def test_a_too_strict_gate_gets_a_hint(store_url: str, use_store: Callable[..., None]) -> None:
    from escalate.gates import GateContext, Rejected

    scores = iter([0.9, 0.69, 0.95, 0.695, 0.71, 0.69, 0.85, 0.685, 0.75, 0.69, 0.9, 0.66] * 2)

    def confidence(answer: Any, context: GateContext) -> float:
        score = next(scores)
        if score < 0.7:
            raise Rejected(f"confidence {score} < 0.7", score=score)
        return score

    solve = make_solver(gates=[confidence])
    use_store(store_url)
    for _ in range(12):
        solve("easy")
    assert escalate.flush()
    store = Store(store_url)
    report = build_report(store)
    # Rejections at 0.66-0.695, just under the lowest passing score 0.71: near misses.
    (hint,) = report.calibration
    assert (hint.gate, hint.verdict) == ("confidence", "too strict")
    assert hint.rejected >= 5 and hint.lowest_passing == pytest.approx(0.71)
    store.close()
