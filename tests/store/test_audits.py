"""Audits in the receipt store, over SQLite and a real PostgreSQL: calls through the real
openai SDK and instructor against the local provider server, audited by the strong tier;
the report's false-pass rates with their Wilson intervals, the audits' cost, background
audits replacing their stored receipt, labels, old stores."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import create_engine, func, select

import escalate
import escalate.store._schema as schema
from escalate import Audit, Price, Receipt, Tier, receipt_of
from escalate.gates import min_length
from escalate.store import (
    Filters,
    Store,
    audit_labels,
    build_report,
    delete_before,
    print_report,
    report_csv,
    report_json,
)
from escalate.store._rows import rows_of
from escalate.testing._server import Fault, ProviderServer, Reply

CHEAP, STRONG = "gpt-4o-mini", "gpt-4o"


class Invoice(BaseModel):
    customer: str
    total: float


def tiers(openai_tier: Any) -> list[Tier]:
    return [
        openai_tier(CHEAP, price=Price(input="0.15", output="0.60")),
        openai_tier(STRONG, price=Price(input="2.50", output="10.00")),
    ]


def stored(url: str) -> list[Receipt]:
    store = Store(url)
    try:
        return list(store.receipts())
    finally:
        store.close()


def ten_audited_calls(build: Any, server: ProviderServer, openai_tier: Any) -> list[Receipt]:
    """Ten answers that pass on the cheap tier, each audited: 6 audits agree, 3 disagree,
    1 fails (no verdict). The receipts, in call order."""
    server.respond(CHEAP, lambda request: Reply(data={"customer": "ACME", "total": 1}))
    audits = [Reply(data={"customer": "ACME", "total": 1})] * 6
    audits += [Reply(data={"customer": "ACME", "total": 2})] * 3 + [Fault(500)]
    server.script(STRONG, *audits)
    extract = build(
        tiers=tiers(openai_tier),
        response_model=Invoice,
        gates=[min_length("customer", 2)],
        audit=Audit(share=1.0, key="total"),
    )
    return [receipt_of(extract(f"doc {i}")) for i in range(10)]


def test_false_pass_rates_with_wilson_intervals_in_the_report(
    build: Any,
    server: ProviderServer,
    openai_tier: Any,
    store_url: str,
    use_store: Callable[..., None],
) -> None:
    use_store(store_url)
    receipts = ten_audited_calls(build, server, openai_tier)
    assert escalate.flush(timeout=30)

    report = build_report(Store(store_url))

    a = report.audits
    assert (a.audits, a.agreed, a.disagreed, a.unknown) == (10, 6, 3, 1)
    paid = [x.cost_usd for r in receipts for x in r.attempts if x.purpose == "audit"]
    assert a.known_cost_usd == sum(paid, Decimal(0)) and a.known_cost_usd > 0
    cheap = tiers(openai_tier)[0].display_name
    by = {(r.scope, r.name): r for r in a.rates}
    for key in (("tier", cheap), ("gate", "min_length(customer)")):
        rate = by[key]
        assert (rate.audited, rate.disagreed, rate.unknown) == (9, 3, 1)
        assert rate.rate == pytest.approx(3 / 9)
        assert rate.interval == pytest.approx((0.12058, 0.64580), abs=1e-5)  # Wilson, 3 of 9
    # The audits are no path, no escalation and no gate firing.
    assert [p.path for p in report.paths] == [cheap]
    assert report.total.escalated == 0 and report.gates == []
    assert report.total.known_cost_usd == sum((r.known_cost_usd for r in receipts), Decimal(0))
    (saving,) = report.savings  # the auditing tier is the strongest, though none escalated
    assert saving.strongest_tier == tiers(openai_tier)[1].display_name
    assert saving.actual_usd == report.total.known_cost_usd  # the audits were paid

    as_json = json.loads(report_json(report))["audits"]
    assert as_json["disagreed"] == 3 and as_json["known_cost_usd"] == str(a.known_cost_usd)
    tier_row = next(r for r in as_json["rates"] if r["scope"] == "tier")
    assert tier_row["low"] == pytest.approx(0.12058, abs=1e-5) and tier_row["audited"] == 9
    rows = list(csv.reader(io.StringIO(report_csv(report))))
    title = next(i for i, row in enumerate(rows) if row and row[0].startswith("# False-pass"))
    assert rows[title + 1][:5] == ["scope", "name", "audited", "disagreed", "rate"]
    assert rows[title + 2][:6] == ["tier", cheap, "9", "3", "33.3%", "12.1%"]
    printed = io.StringIO()
    print_report(report, printed, width=200)
    assert (
        "False-pass rate by tier and gate" in printed.getvalue() and "64.6%" in printed.getvalue()
    )


def test_a_background_audit_replaces_the_stored_receipt(
    build: Any,
    server: ProviderServer,
    openai_tier: Any,
    store_url: str,
    use_store: Callable[..., None],
) -> None:
    use_store(store_url)
    server.script(CHEAP, Reply(data={"customer": "ACME", "total": 12.5}))
    server.script(STRONG, Reply(data={"customer": "ACME", "total": 125}))
    extract = build(
        tiers=tiers(openai_tier),
        response_model=Invoice,
        audit=Audit(share=1.0, key="total", mode="background"),
    )

    original = receipt_of(extract("ACME owes 12.50"))
    assert escalate.audits_flush(timeout=30) and escalate.flush(timeout=30)

    (receipt,) = stored(store_url)
    assert receipt.id == original.id and original.audit is None
    assert [a.purpose for a in receipt.attempts] == ["answer", "audit"]
    assert receipt.audit is not None
    assert (receipt.audit.mode, receipt.audit.agreed) == ("background", False)
    assert receipt.cost_usd == original.cost_usd + receipt.attempts[1].cost_usd  # type: ignore[operator]
    store = Store(store_url)
    with store.engine.connect() as connection:
        attempts = connection.execute(
            select(func.count()).where(schema.attempts.c.call_id == original.id)
        ).scalar()
        calls = connection.execute(select(schema.calls.c.known_cost_usd)).scalars().all()
    assert attempts == 2 and calls == [receipt.known_cost_usd]
    report = build_report(store)
    assert report.audits.disagreed == 1 and report.total.calls == 1
    (label,) = audit_labels(store, disagreed_only=True)
    assert (label.receipt_id, label.agreed) == (original.id, False)
    assert label.answer_raw is not None and "12.5" in label.answer_raw
    assert label.audit_raw is not None and "125" in label.audit_raw
    assert (label.answer_key, label.audit_key) == ("12.5", "125")
    store.close()


def test_audit_labels_filter_and_keep_no_verdicts_apart(
    server: ProviderServer,
    openai_tier: Any,
    store_url: str,
    use_store: Callable[..., None],
) -> None:
    use_store(store_url)
    server.respond(CHEAP, lambda request: Reply(data={"customer": "ACME", "total": 1}))
    server.script(
        STRONG,
        Reply(data={"customer": "ACME", "total": 1}),
        Reply(data={"customer": "ACME", "total": 3}),
        Fault(500),
    )

    @escalate.escalating(tiers=tiers(openai_tier), response_model=Invoice, audit=Audit(share=1))
    def extract(text: str) -> str:
        return text

    ids = [receipt_of(extract(f"doc {i}")).id for i in range(3)]
    assert escalate.flush(timeout=30)

    labelled = audit_labels(store_url, function="extract")
    assert [(label.receipt_id, label.agreed) for label in labelled] == [
        (ids[0], True),
        (ids[1], False),
    ]
    everything = audit_labels(store_url, with_verdict=False)
    assert [label.agreed for label in everything] == [True, False, None]
    assert audit_labels(store_url, function="elsewhere") == []
    assert build_report(Store(store_url), Filters(function="extract")).audits.audits == 3


def test_a_version_1_store_migrates_and_its_rows_still_read(
    store_url: str, openai_tier: Any, server: ProviderServer
) -> None:
    from datetime import UTC, datetime

    from escalate._receipt import Attempt, Route

    now = datetime.now(UTC)
    old = Receipt(
        function="app.extract",
        outcome="answered",
        answered_by="cheap",
        route=Route(start_tier="cheap"),
        attempts=(
            Attempt(
                tier="cheap",
                deployment="cheap",
                provider="openai",
                requested_model=CHEAP,
                outcome="answered",
                cost_usd=Decimal("0.001"),
                started_at=now,
            ),
        ),
        started_at=now,
        finished_at=now,
        latency_s=0.1,
    )
    engine = create_engine(Store(store_url).url)
    with engine.begin() as connection:  # a store exactly as version 1 made it
        schema.schema_migrations.create(connection)
        schema.MIGRATIONS[0][1](connection)
        connection.execute(schema.schema_migrations.insert().values(version=1, applied_at=now))
        rows = rows_of([old])
        connection.execute(schema.calls.insert(), rows.calls)
        connection.execute(schema.attempts.insert(), rows.attempts)
    engine.dispose()

    store = Store(store_url)
    assert store.schema_version() == schema.SCHEMA_VERSION == 2
    assert list(store.receipts()) == [old]
    report = build_report(store)
    assert report.total.calls == 1 and report.audits.audits == 0 and report.audits.rates == []
    assert json.loads(report_json(report))["audits"]["audits"] == 0
    assert delete_before(store, datetime(2999, 1, 1, tzinfo=UTC)) == 1
    store.close()


def test_deleting_old_calls_deletes_their_audits(
    server: ProviderServer, openai_tier: Any, store_url: str, use_store: Callable[..., None]
) -> None:
    from datetime import UTC, datetime

    use_store(store_url)
    server.script(CHEAP, Reply(data={"customer": "ACME", "total": 1}))
    server.script(STRONG, Reply(data={"customer": "ACME", "total": 1}))

    @escalate.escalating(tiers=tiers(openai_tier), response_model=Invoice, audit=Audit(share=1))
    def extract(text: str) -> str:
        return text

    extract("doc")
    assert escalate.flush(timeout=30)
    store = Store(store_url)
    assert delete_before(store, datetime(2999, 1, 1, tzinfo=UTC)) == 1
    with store.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(schema.audits)).scalar() == 0
    store.close()
