"""Alerts: a watch fires on a synthetic drift of the escalation rate and not on a steady
rate; on the cheap tier's quality; on cost per hour. Each alert is an event for the hooks
and a WARNING record."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

import escalate
from escalate import Receipt, receipt_of
from escalate._receipt import new_receipt_id
from escalate.events import AlertRaised, Event, set_hooks
from escalate.store import Store, Watch, delete_before
from tests.store.test_store import make_solver

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _calls(rates: list[float], per_hour: int = 40) -> list[Receipt]:
    """Real receipts of real calls, one hour of ``per_hour`` calls per rate (the share of
    them that escalate), the last hour ending at NOW: a synthetic history."""
    solve = make_solver()
    easy, hard = receipt_of(solve("easy")), receipt_of(solve("hard"))
    receipts = []
    for hours_ago, rate in zip(range(len(rates), 0, -1), rates, strict=True):
        escalating = round(per_hour * rate)
        for i in range(per_hour):
            template = hard if i < escalating else easy
            at = NOW - timedelta(hours=hours_ago) + timedelta(seconds=60 * i + 30)
            receipts.append(
                template.model_copy(
                    update={
                        "id": new_receipt_id(),
                        "started_at": at,
                        "finished_at": at + timedelta(seconds=template.latency_s),
                    }
                )
            )
    return receipts


def _store(url: str, rates: list[float]) -> Store:
    store = Store(url)
    store.write(_calls(rates))
    return store


def test_a_drift_fires_and_a_steady_rate_does_not(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    watch = Watch(ceiling=0.4, max_drift_points=10, window=timedelta(hours=1))
    steady = _store(store_url, [0.1] * 7)
    assert watch.check(steady, now=NOW) == []
    steady.write(_calls([0.5])[-1:])  # one more escalating call does not move the band
    steady.close()

    drifting = Store(store_url)
    assert delete_before(drifting, NOW + timedelta(days=1)) == 7 * 40 + 1
    drifting.write(_calls([0.1] * 6 + [0.5]))  # the last hour drifts up
    heard: list[Event] = []
    set_hooks([heard.append])
    try:
        with caplog.at_level(logging.WARNING, logger="escalate.store"):
            alerts = watch.check(drifting, now=NOW)
    finally:
        set_hooks([])
    kinds = sorted(a.kind for a in alerts)
    assert kinds == ["escalation_ceiling", "escalation_drift"]
    drift = next(a for a in alerts if a.kind == "escalation_drift")
    assert drift.value == pytest.approx(0.5) and drift.limit == pytest.approx(0.1)
    assert "+40.0 points off its baseline 10.0%" in drift.message
    assert heard == alerts and all(isinstance(e, AlertRaised) for e in heard)
    assert [r.levelname for r in caplog.records if "escalate alert" in r.getMessage()] == [
        "WARNING",
        "WARNING",
    ]
    # An hour earlier the rate was steady: nothing held.
    assert watch.check(drifting, now=NOW - timedelta(hours=1)) == []
    drifting.close()


def test_too_few_calls_say_nothing(store_url: str) -> None:
    store = Store(store_url)
    store.write(_calls([1.0], per_hour=10))
    assert Watch(ceiling=0.4, min_calls=20).check(store, now=NOW) == []
    assert len(Watch(ceiling=0.4, min_calls=10).check(store, now=NOW)) == 1
    store.close()


def test_the_cheap_tiers_quality_and_the_cost_per_hour(store_url: str, use_store: object) -> None:
    store = Store(store_url)
    receipts = _calls([0.25])
    store.write(receipts)
    cheap_answers = [r for r in receipts if r.answered_by == "cheap"]
    for i, receipt in enumerate(cheap_answers[:10]):
        store.add_feedback(receipt.id, good=i < 4, at=NOW)
    spent = sum(r.known_cost_usd for r in receipts)
    watch = Watch(ceiling=None, min_cheap_quality=0.8, budget_usd_per_hour=float(spent) * 0.9)
    alerts = {a.kind: a for a in watch.check(store, now=NOW)}
    assert set(alerts) == {"cheap_quality", "cost_per_hour"}
    assert alerts["cheap_quality"].value == pytest.approx(0.4)
    assert alerts["cost_per_hour"].value == pytest.approx(float(spent))
    relaxed = Watch(ceiling=None, min_cheap_quality=0.3, budget_usd_per_hour=float(spent) * 2)
    assert relaxed.check(store, now=NOW) == []
    store.close()


def test_a_watch_per_function(store_url: str, use_store: object) -> None:
    store = Store(store_url)
    store.write(_calls([0.6]))
    assert Watch(function="somewhere_else").check(store, now=NOW) == []
    assert [a.function for a in Watch(function="solve").check(store, now=NOW)] == ["solve"]
    assert escalate.store_stats() == []  # nothing was configured: the store was used directly
    store.close()
