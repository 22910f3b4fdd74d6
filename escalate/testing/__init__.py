"""escalate's testing kit: test escalating functions without keys or network.

- Fake tiers that run in-process and produce real receipts: :class:`ScriptedTier` plays a
  script of answers, bad answers, provider failures and exceptions;
  :class:`FunctionTier` answers with a function of the messages.
- :func:`override` swaps the tiers of one escalating function (or of all of them) without
  touching the call site; :func:`block_providers` makes any real provider call fail loudly.
- :func:`set_testing` (stamina's model): retries happen without sleeping, optionally
  capped; :func:`breakers` gives the circuit breakers a fresh registry and a clock the
  test moves (:class:`ManualClock`). The pytest plugin isolates breakers per test.
- A pytest plugin (registered by the package's entry point) for recorded cassettes on
  top of pytest-recording: ``@pytest.mark.vcr``, ``--record-mode``, matching on what
  decides an answer, keys scrubbed, misses explained. See ``docs/testing.md``;
  :func:`configure_vcr` gives plain vcrpy the same behaviour.
- Assertions on receipts: :func:`assert_tiers`, :func:`assert_answered_by`,
  :func:`assert_escalated`, :func:`assert_not_escalated`, :func:`assert_cost_at_most`.
- :class:`ProviderServer`: a local server speaking the OpenAI and Anthropic wire formats,
  to run real tiers (and record cassettes) against.

::

    from escalate.testing import ScriptedTier, assert_escalated, override

    def test_a_bad_cheap_answer_escalates():
        cheap = ScriptedTier("cheap", {"total": "twelve"})
        strong = ScriptedTier("strong", {"total": 12})
        with override(extract_invoice, tiers=[cheap, strong]):
            invoice = extract_invoice("...")
        assert invoice.total == 12
        assert_escalated(invoice, trigger="validation", reason_contains="total")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from escalate.testing._assertions import (
    assert_answered_by,
    assert_cost_at_most,
    assert_escalated,
    assert_not_escalated,
    assert_tiers,
    format_receipt,
)
from escalate.testing._breakers import Breakers, ManualClock, breakers
from escalate.testing._fakes import (
    FunctionTier,
    ScriptedFault,
    ScriptedTier,
    ScriptExhausted,
    Timeout,
)
from escalate.testing._override import block_providers, override
from escalate.testing._server import Drop, Fault, Malformed, ProviderServer, Reply, Request
from escalate.testing._testing_mode import is_testing, set_testing

if TYPE_CHECKING:
    from escalate.testing._scrubbing import configure_vcr

__all__ = [
    "Breakers",
    "Drop",
    "Fault",
    "FunctionTier",
    "Malformed",
    "ManualClock",
    "ProviderServer",
    "Reply",
    "Request",
    "ScriptExhausted",
    "ScriptedFault",
    "ScriptedTier",
    "Timeout",
    "assert_answered_by",
    "assert_cost_at_most",
    "assert_escalated",
    "assert_not_escalated",
    "assert_tiers",
    "block_providers",
    "breakers",
    "configure_vcr",
    "format_receipt",
    "is_testing",
    "override",
    "set_testing",
]


def __getattr__(name: str) -> Any:
    # The cassette helpers are for vcrpy users only: load them when asked, not with the kit.
    if name == "configure_vcr":
        from escalate.testing._scrubbing import configure_vcr

        return configure_vcr
    raise AttributeError(f"module 'escalate.testing' has no attribute {name!r}")
