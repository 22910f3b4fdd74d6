"""A user's tests of an escalating function, replayed offline from recorded cassettes.

Every test is marked ``@pytest.mark.vcr``: pytest-recording gives it a cassette (a YAML
file under ``cassettes/test_invoice_offline/``), and escalate's pytest plugin matches each
request on what decides the answer (model, messages, tools, ...), keeps keys out of the
file, and fails a test whose request the cassette does not hold with vcrpy's explanation.

Replay, offline and with no key (the default record mode is ``none``)::

    pytest examples/test_invoice_offline.py

Record the cassettes again (this example records against escalate's local provider
server: see ``conftest.py``), then review the YAML and commit it::

    pytest examples/test_invoice_offline.py --record-mode=rewrite
"""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from escalate import escalating, receipt_of
from escalate.testing import (
    assert_cost_at_most,
    assert_escalated,
    assert_not_escalated,
    assert_tiers,
)


class Invoice(BaseModel):
    vendor: str
    total: float = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. EUR")


@escalating(tiers=["openai/gpt-4o-mini", "openai/gpt-4o"], response_model=Invoice)
def extract_invoice(text: str) -> str:
    return f"Extract the vendor, the total and its ISO currency code from this invoice.\n\n{text}"


@pytest.mark.vcr
def test_a_plain_invoice_stays_on_the_cheap_tier() -> None:
    invoice = extract_invoice("ACME Corp. Invoice 1042. Total due: 1,204.50 EUR")

    assert invoice == Invoice(vendor="ACME Corp.", total=1204.5, currency="EUR")
    assert_tiers(invoice, ["openai/gpt-4o-mini"])
    assert_not_escalated(invoice)
    assert_cost_at_most(invoice, "0.0001")


@pytest.mark.vcr
def test_a_messy_invoice_escalates_when_the_cheap_answer_fails_validation() -> None:
    invoice = extract_invoice("Müller GmbH, Rechnung 7: Summe 98,20 € inkl. MwSt.")

    assert invoice == Invoice(vendor="Müller GmbH", total=98.2, currency="EUR")
    assert_escalated(invoice, trigger="validation", reason_contains="currency")
    assert_tiers(invoice, ["openai/gpt-4o-mini", "openai/gpt-4o"])
    # Replays are exact: the same tokens, and so the same cost, every run.
    receipt = receipt_of(invoice)
    assert [a.outcome for a in receipt.attempts] == ["rejected", "answered"]
    assert receipt.attempts[0].raw_output is not None
    assert '"currency": "€"' in receipt.attempts[0].raw_output
    assert_cost_at_most(invoice, "0.01")
