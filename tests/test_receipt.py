"""The receipt, schema v1 (``escalate._receipt``): ids, times and JSON round trips of real
receipts; the committed JSON Schema is what the models generate; a stored v1 receipt still
parses; the ``escalate schema`` and ``escalate --version`` commands."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import escalate
from escalate import SCHEMA_VERSION, Receipt, Tier, receipt_of
from escalate._receipt import PROVIDER_TRIGGERS, QUALITY_TRIGGERS, Trigger, new_receipt_id
from escalate.cli import main, receipt_schema
from escalate.testing._server import Fault, ProviderServer, Reply

from .conftest import KEY

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = ROOT / "docs" / "receipt-schema.json"
FIXTURE_V1 = Path(__file__).resolve().parent / "fixtures" / "receipt-v1.json"


class Invoice(BaseModel):
    customer: str
    total: float


GOOD = {"customer": "ACME", "total": 12.5}


@pytest.fixture(params=["openai", "anthropic"])
def tiers(request: pytest.FixtureRequest, server: ProviderServer) -> list[Tier]:
    provider = str(request.param)
    url = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    return [Tier(f"{provider}/{m}", base_url=url, api_key=KEY) for m in ("cheap", "strong")]


# --- real receipts ------------------------------------------------------------------------------


def test_receipt_ids_are_unique_uuid7s_that_sort_by_time(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script("cheap", *[Reply(data=GOOD) for _ in range(3)])
    extract = build(tiers=tiers, response_model=Invoice)

    receipts = []
    for _ in range(3):
        receipts.append(receipt_of(extract("ACME owes 12.50")))
        time.sleep(0.002)  # ids order by the millisecond

    ids = [r.id for r in receipts]
    assert len(set(ids)) == 3
    assert ids == sorted(ids)
    assert all(uuid.UUID(i).version == 7 for i in ids)
    assert [r.started_at for r in receipts] == sorted(r.started_at for r in receipts)


def test_new_receipt_ids_are_unique_and_sort_by_creation() -> None:
    ids = []
    for _ in range(5):
        ids.append(new_receipt_id())
        time.sleep(0.002)
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert len({new_receipt_id() for _ in range(1000)}) == 1000  # within one millisecond too
    millis = uuid.UUID(ids[0]).int >> 80
    assert abs(millis - time.time() * 1000) < 60_000


def test_a_receipt_times_the_call_and_round_trips_through_json(
    build: Any, server: ProviderServer, tiers: list[Tier]
) -> None:
    server.script("cheap", Fault(503), Reply(data={"customer": "ACME"}))
    server.script("strong", Reply(data=GOOD))
    extract = build(tiers=tiers, response_model=Invoice, task="invoices", tags={"k": "v"})

    receipt = receipt_of(extract("ACME owes 12.50"))

    assert receipt.schema_version == SCHEMA_VERSION == 1
    assert receipt.finished_at >= receipt.started_at
    assert all(a.started_at >= receipt.started_at for a in receipt.attempts)
    assert receipt.started_at.tzinfo is not None and receipt.latency_s > 0
    assert Receipt.from_json(receipt.to_json()) == receipt
    assert Receipt.from_json(receipt.to_json(indent=2)) == receipt
    assert Receipt.from_json(receipt.to_json().encode()) == receipt
    written = json.loads(receipt.to_json())
    # "cheap" and "strong" have no price: the total is unknown, and JSON says so.
    assert written["cost_usd"] is None and written["known_cost_usd"] == "0"
    assert written["escalated"] is True and written["spent_attempts"] == 2
    assert written["function"] == receipt.function and "." in receipt.function


def test_the_trigger_set_is_split_into_quality_and_provider_failures() -> None:
    triggers = set(Trigger.__args__)  # type: ignore[attr-defined]
    assert QUALITY_TRIGGERS | PROVIDER_TRIGGERS | {"cancelled"} == triggers
    assert not QUALITY_TRIGGERS & PROVIDER_TRIGGERS


# --- the JSON Schema ---------------------------------------------------------------------------


def test_the_committed_json_schema_is_what_the_models_generate() -> None:
    """docs/receipt-schema.json is generated: `escalate schema > docs/receipt-schema.json`."""
    assert SCHEMA_FILE.read_text() == receipt_schema(), (
        "the receipt models changed: regenerate with `escalate schema > docs/receipt-schema.json`"
    )


def test_the_schema_describes_what_receipts_write() -> None:
    schema = json.loads(receipt_schema())
    assert schema["title"] == "escalate receipt, schema version 1"
    written = json.loads(Receipt.from_json(FIXTURE_V1.read_text()).to_json())
    assert set(written) <= set(schema["properties"])
    assert set(schema["required"]) <= set(written)
    attempt = schema["$defs"]["Attempt"]
    assert set(written["attempts"][0]) <= set(attempt["properties"])
    assert set(attempt["properties"]["trigger"]["anyOf"][0]["enum"]) == set(
        Trigger.__args__  # type: ignore[attr-defined]
    )


def test_escalate_schema_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == SCHEMA_FILE.read_text()


# --- the stored v1 receipt -------------------------------------------------------------------


def test_a_stored_v1_receipt_parses_and_writes_back_the_same_fields() -> None:
    """tests/fixtures/receipt-v1.json was written once by a real call (openai and anthropic
    SDKs, the local provider server): never edit it; every later version must read it."""
    stored = json.loads(FIXTURE_V1.read_text())
    receipt = Receipt.from_json(FIXTURE_V1.read_text())

    assert json.loads(receipt.to_json()) == stored
    assert receipt.schema_version == 1 and receipt.function == "invoices.extract"
    assert (receipt.task, receipt.tags) == (
        "invoices",
        {"team": "accounts-payable", "source": "email"},
    )
    assert receipt.route.source == "options" and receipt.route.start_tier == "cheap"
    assert [m.kind for m in receipt.moves] == ["sideways", "up"]
    assert receipt.moves[1].gate == "confident"
    assert [a.purpose for a in receipt.attempts] == ["answer", "retry", "answer", "reask"]
    assert [a.trigger for a in receipt.attempts] == ["server_error", "gate", "validation", None]
    assert receipt.attempts[1].scores == {"confident": 0.3}
    assert receipt.attempts[-1].scores == {"confident": 0.9}
    assert receipt.cost_usd is not None and str(receipt.cost_usd) == stored["cost_usd"]
    assert receipt.escalated and receipt.spent_attempts == 3


# --- the command line ---------------------------------------------------------------------


def test_escalate_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"escalate {escalate.__version__}\n"
    assert escalate.__version__ != "0.0.0"  # installed, so read from its metadata


def test_python_m_escalate_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "escalate", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    from importlib.metadata import version

    assert out.stdout.strip() == f"escalate {version('escalate')}"


def test_summaries_say_who_answered_and_how_it_ended() -> None:
    stored = Receipt.from_json(FIXTURE_V1.read_text())
    line = stored.summary()
    assert f"answered by {stored.answered_by}; path " in line and " via " not in line
    failed = stored.model_copy(update={"outcome": "failed", "answered_by": None})
    assert (
        f"{stored.function}: failed; path " in failed.summary() and "by -" not in failed.summary()
    )
    best = stored.model_copy(update={"outcome": "best_effort"})
    assert f"best effort from {stored.answered_by}" in best.summary()
