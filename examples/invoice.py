"""The invoice case: extract a typed Invoice on the cheapest tier whose answer holds.

Run it offline (no keys): ``python examples/invoice.py``. It starts escalate's local
provider server, scripts the cheap model to miss a field on the second document, and
prints each call's receipt. Against real providers, drop the server and the ``base_url``s:
the tiers read OPENAI_API_KEY and ANTHROPIC_API_KEY.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal

from pydantic import BaseModel, Field, field_validator

from escalate import AllTiersFailed, Tier, escalating, receipt_of
from escalate.testing import ProviderServer, Reply


class LineItem(BaseModel):
    description: str
    amount: Decimal


class Invoice(BaseModel):
    customer_id: str = Field(pattern=r"^C-\d{4}$")
    issued: date
    items: list[LineItem]
    total: Decimal

    @field_validator("items")
    @classmethod
    def _has_items(cls, items: list[LineItem]) -> list[LineItem]:
        if not items:
            raise ValueError("an invoice lists at least one item")
        return items


DOCS = [
    "Invoice for C-1042, 3 March 2025: 2 hours of consulting at $150. Total $300.",
    "Customer C-2001 was billed on 2025-04-09 for hosting ($40) and a domain ($12): $52.",
]


def make_extractor(cheap: Tier | str, strong: Tier | str) -> Callable[[str], Invoice]:
    """The decorated function. In real code it sits at module level with plain strings:
    ``tiers=["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"]``."""

    @escalating(tiers=[cheap, strong], response_model=Invoice)
    def extract_invoice(text: str) -> str:
        return f"Extract the invoice in: {text}"

    return extract_invoice


def script(server: ProviderServer) -> None:
    """What the two models answer, offline: the cheap one misreads the second document."""
    first = {
        "customer_id": "C-1042",
        "issued": "2025-03-03",
        "items": [{"description": "consulting, 2 h", "amount": "300"}],
        "total": "300",
    }
    second = {
        "customer_id": "C-2001",
        "issued": "2025-04-09",
        "items": [
            {"description": "hosting", "amount": "40"},
            {"description": "domain", "amount": "12"},
        ],
        "total": "52",
    }
    server.script("gpt-4o-mini", Reply(data=first), Reply(data={**second, "customer_id": "2001"}))
    server.script("claude-sonnet-4-5", Reply(data=second))


def main() -> None:
    with ProviderServer() as server:
        script(server)
        extract_invoice = make_extractor(
            Tier("openai/gpt-4o-mini", base_url=server.openai_base_url, api_key="offline"),
            Tier("anthropic/claude-sonnet-4-5", base_url=server.anthropic_base_url, api_key="-"),
        )
        for doc in DOCS:
            try:
                invoice: Invoice = extract_invoice(doc)
            except AllTiersFailed as error:
                print("failed:", error)
                continue
            receipt = receipt_of(invoice)
            print(invoice.model_dump_json())
            print("  " + receipt.summary())
            for attempt in receipt.attempts:
                print(
                    f"    {attempt.tier:<28} {attempt.outcome:<9} "
                    f"{attempt.input_tokens:>4} in {attempt.output_tokens:>4} out  "
                    f"${attempt.cost_usd}  {attempt.reason or ''}"
                )


if __name__ == "__main__":
    main()
