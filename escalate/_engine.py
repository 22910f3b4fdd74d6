"""The decision core: the walk over tiers, free of I/O.

:func:`walk` is a generator. It yields *steps* (see ``_plan``) and is sent back what each
came to, or has thrown into it whatever stopped a step (a cancellation, a bug in a gate);
it returns ``(value, receipt)`` or raises, and whatever it raises carries the receipt of
every attempt made so far. The sync and async faces in ``_faces`` are the only code that
performs steps, so both share every decision and every test of a decision. It knows no
SDK, no instructor, no asyncio and no decorator.

Two kinds of trouble are never confused:

- a *quality failure* (validation, a gate, a matched ``on``) moves the task **up** a tier;
- a *provider failure* (429, 5xx, 529, timeout, connection) is retried on the same
  deployment with backoff (tenacity's own decision machine, honouring Retry-After), then
  moved **sideways** to the tier's next deployment, then up or raised, by policy.

One tier's answer and its gates are ``_gating``'s; one tier's deployments and retries
are ``_deploying``'s; the audit of an answer that passed (``escalating(audit=...)``) is
``_auditing``'s: a step after acceptance, or one left for the background.
"""

from __future__ import annotations

from collections.abc import Generator
from decimal import Decimal
from typing import Any

from escalate._auditing import Deferred, audit_answer
from escalate._gating import answer_on_tier, with_failure
from escalate._ledger import Ledger
from escalate._outcomes import Answered, Failed
from escalate._plan import CallInfo, EngineTier, Messages, Plan, Step
from escalate._receipt import CallOutcome, Receipt
from escalate._results import mark_error
from escalate.exceptions import (
    AllTiersFailed,
    BudgetExceeded,
    EscalationFailed,
    ProviderExhausted,
)

__all__ = ["Walk", "walk"]

Walk = Generator[Step, Any, tuple[Any, Receipt]]
_Ended = tuple[Any, CallOutcome, str | None]
"""(value, the receipt's outcome, the answering tier)."""


def walk(plan: Plan, messages: Messages, call: CallInfo | None = None) -> Walk:
    """Walk the tiers from ``call.start`` until one answers; see the module docstring."""
    call = call or CallInfo()
    ledger = Ledger(plan, call)
    try:
        value, outcome, by = yield from _walk(plan, messages, call, ledger)
    except EscalationFailed as failure:
        ledger.finished(failure.receipt, error=failure)
        raise
    except GeneratorExit:
        raise  # the face was abandoned mid-call; it finishes the receipt itself
    except BaseException as error:
        cancelled = _is_cancellation(error)
        if cancelled:
            ledger.cancelled(type(error).__name__)
        receipt = ledger.receipt("cancelled" if cancelled else "error", None)
        mark_error(error, receipt)
        ledger.finished(receipt, error=error)
        raise
    receipt = ledger.receipt(outcome, by)
    ledger.audited(receipt)
    ledger.finished(receipt, result=value)
    if ledger.deferred is not None and call.on_audit is not None:
        call.on_audit(Deferred(ledger.deferred, receipt))
    return value, receipt


def _is_cancellation(error: BaseException) -> bool:
    # asyncio.CancelledError, KeyboardInterrupt, SystemExit: the caller stopped the call
    # (CancelledError is matched by name, so the engine needs no asyncio).
    return not isinstance(error, Exception) or type(error).__name__ == "CancelledError"


def _walk(
    plan: Plan, messages: Messages, call: CallInfo, ledger: Ledger
) -> Generator[Step, Any, _Ended]:
    budget = call.budget_usd if call.budget_usd is not None else plan.budget_usd
    last: Failed | None = None
    asked = messages  # what an audit asks: the function's own messages
    for index in range(call.start, len(plan.tiers)):
        tier = plan.tiers[index]
        result, deployment = yield from answer_on_tier(plan, call, index, messages, ledger)
        if isinstance(result, Answered):
            yield from audit_answer(plan, call, index, asked, result.value, ledger)
            return result.value, "answered", tier.name
        last = result = _judge(plan, result, ledger)
        if result.kind == "provider" and plan.on_provider_exhausted == "raise":
            raise ProviderExhausted(
                f"every deployment of tier {tier.name!r} failed at the provider "
                f"({result.reason}); on_provider_exhausted='raise'",
                receipt=ledger.receipt("failed", None),
            ) from result.error
        if index + 1 < len(plan.tiers):  # no move is recorded when nowhere is left
            upper = plan.tiers[index + 1]
            if budget is not None and _over_budget(ledger, upper, budget):
                return _unmet(plan, ledger, result, BudgetExceeded)  # and no move either
            ledger.move("up", (tier.name, deployment), (upper.name, _first(upper)), result)
        if plan.carry_failure and result.kind == "quality" and result.trigger != "self_escalation":
            messages = with_failure(messages, result)
    assert last is not None, "a plan always has at least one tier"
    return _unmet(plan, ledger, last, AllTiersFailed)


def _first(tier: EngineTier) -> str:
    return tier.deployments[0].name


def _judge(plan: Plan, result: Failed, ledger: Ledger) -> Failed:
    """A failure no trigger matches passes through, unchanged."""
    if result.kind != "error":
        return result
    if not plan.on(result.error):
        raise result.error
    ledger.restamp_last(outcome="rejected", trigger="on")
    return Failed("quality", "on", result.reason, result.error, result.attempts)


def _over_budget(ledger: Ledger, tier: EngineTier, budget: Decimal) -> bool:
    """Would one more request, on ``tier``, pass the budget? Projected from the last
    attempt's tokens at the next tier's price; when that price is unknown, only what was
    already spent counts."""
    spent, projected = ledger.spent(), ledger.projected(tier)
    if spent + projected <= budget:
        return False
    ledger.notes.append(
        f"budget: stopped before tier {tier.name!r}: spent ${spent:.6f} + projected "
        f"${projected:.6f} would pass the budget of ${budget}"
    )
    return True


def _unmet(
    plan: Plan,
    ledger: Ledger,
    last: Failed,
    error_type: type[AllTiersFailed] | type[BudgetExceeded],
) -> _Ended:
    """No answer passed: the best one so far if the plan allows it, else raise."""
    if plan.when_unmet == "best_effort" and ledger.best is not None:
        value, tier = ledger.best
        ledger.notes.append(f"best effort: the answer of {tier!r} failed its gates")
        return value, "best_effort", tier
    receipt = ledger.receipt("failed", None)
    message = _failure_message(receipt)
    if error_type is BudgetExceeded:
        message = f"{receipt.notes[-1]}\n{message}"
    raise error_type(message, receipt=receipt) from last.error


def _failure_message(receipt: Receipt) -> str:
    lines = [f"all {len(receipt.tiers_tried)} tier(s) failed for {receipt.function}:"]
    for attempt in receipt.attempts:
        why = f" ({attempt.trigger})" if attempt.trigger else ""
        lines.append(
            f"  {attempt.tier} [{attempt.deployment}] {attempt.outcome}{why}: {attempt.reason}"
        )
    lines.append("receipt_of(error) (or error.receipt) holds every attempt and its raw output")
    return "\n".join(lines)
