"""The documented usage type-checks under mypy --strict: the decorated function keeps its
parameters and returns the response model (or a coroutine of it); ``with_receipt`` /
``awith_receipt`` give ``(value, Receipt)`` with the value's type; ``receipt_of`` gives a
``Receipt``; an ``Annotated`` response model is accepted; and misuse is caught."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from mypy import api

SNIPPET = textwrap.dedent(
    """
    from decimal import Decimal
    from typing import Annotated
    from pydantic import AfterValidator, BaseModel
    from escalate import Receipt, awith_receipt, escalating, receipt_of, with_receipt

    class Invoice(BaseModel):
        total: float

    @escalating(tiers=["openai/gpt-4o-mini"], response_model=Invoice)
    def extract(text: str, *, strict: bool = False) -> str:
        return text

    @escalating(tiers=["openai/gpt-4o-mini"], response_model=Invoice)
    async def aextract(text: str) -> str:
        return text

    @escalating(tiers=["openai/gpt-4o-mini"], response_model=str)
    def answer(q: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": q}]

    class Bot:
        @escalating(tiers=["openai/gpt-4o-mini"], response_model=Invoice)
        def read(self, text: str) -> str:
            return text

    @escalating(tiers=["openai/gpt-4o-mini"], response_model=int)
    def count(text: str) -> str:
        return text

    @escalating(tiers=["openai/gpt-4o-mini"], response_model=list[Invoice])
    async def invoices(text: str) -> str:
        return text

    def is_upper(value: str) -> str:
        if not value.isupper():
            raise ValueError("upper case, please")
        return value

    @escalating(
        tiers=["openai/gpt-4o-mini"], response_model=Annotated[str, AfterValidator(is_upper)]
    )
    def shout(text: str) -> str:
        return text

    n, receipt = with_receipt(count, "three apples")
    total: int = n + 1
    cost: Decimal | None = receipt.cost_usd
    loud: str = shout("hi")
    shouted: Receipt = receipt_of(loud)
    from_model: Receipt = receipt_of(extract("x"))

    async def main() -> None:
        found, areceipt = await awith_receipt(invoices, "x")
        first: Invoice = found[0]
        reveal_type(found)
        reveal_type(areceipt)

    reveal_type(n)
    with_receipt(count, 3)
    reveal_type(extract)
    reveal_type(aextract)
    reveal_type(answer("q"))
    reveal_type(Bot().read("x"))
    bad: int = extract("x")
    extract(3)
    """
)


def test_the_decorated_types_are_what_users_expect(tmp_path: Path) -> None:
    module = tmp_path / "usage.py"
    module.write_text(SNIPPET)
    # The default cache (.mypy_cache, git-ignored) is shared with the CI mypy step after it.
    out, _, _ = api.run(["--strict", "--show-error-codes", str(module)])
    lines = [line.split(": ", 1)[1] for line in out.splitlines() if ": " in line]
    assert 'note: Revealed type is "def (text: str, *, strict: bool =) -> usage.Invoice"' in lines
    assert (
        'note: Revealed type is "def (text: str) -> typing.Coroutine[Any, Any, usage.Invoice]"'
        in lines
    )
    assert lines.count('note: Revealed type is "usage.Invoice"') == 1  # the bound method
    assert 'note: Revealed type is "str"' in lines
    assert 'note: Revealed type is "int"' in lines  # with_receipt's value
    assert 'note: Revealed type is "list[usage.Invoice]"' in lines  # awith_receipt's value
    assert 'note: Revealed type is "escalate._receipt.Receipt"' in lines
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 3, out
    assert 'Argument 2 to "with_receipt" has incompatible type "int"; expected "str"' in errors[0]
    assert 'has type "Invoice", variable has type "int"' in errors[1]
    assert 'incompatible type "int"; expected "str"' in errors[2]


def test_the_installed_package_is_typed_outside_its_source_tree(tmp_path: Path) -> None:
    """mypy run where users run it (not in this checkout) must see escalate's types: the
    package ships a ``py.typed`` marker, or every decorated function is ``Any``."""
    module = tmp_path / "outside.py"
    module.write_text(
        "from escalate import escalating\n"
        "@escalating(tiers=['openai/gpt-4o-mini'], response_model=int)\n"
        "def count(text: str) -> str:\n"
        "    return text\n"
        "reveal_type(count('x'))\n"
    )
    cache = Path(__file__).resolve().parent.parent / ".mypy_cache"
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), module.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert 'Revealed type is "int"' in done.stdout, done.stdout
    assert done.returncode == 0, done.stdout
