"""The audit of an answer that passed: one request to the auditing tier, compared on a key.

Part of the engine (no I/O): the walk asks :func:`audit_answer` once an answer has passed;
it decides whether the call is audited (``_audit.AuditPlan.selects``), and then either
yields the audit's request itself (inline) or leaves a :class:`Due` on the ledger, which
the call path hands to the background worker with the finished receipt
(:class:`Deferred`).

What an audit is, and is not:

- one request, the function's own messages and response model, to the auditing tier's
  first deployment (its circuit breaker asked first: an open one is a ``skipped``
  attempt); never retried and never moved sideways, so it adds one request's latency to
  an inline call at most, and a provider failure only leaves the verdict unknown;
- an attempt on the receipt with ``purpose="audit"``, its tokens and cost its own and in
  the receipt's cost (it was paid), never the returned answer; no move, so ``escalated``
  and the path stay as they were;
- it keeps to the call's budget (``budget_usd``): an audit whose projected cost (the last
  request's tokens at the auditing tier's price) would pass it is not made, and a note
  says so;
- the auditing tier's gates are not run: its answer is the reference. A key that cannot
  be read, an answer that does not validate, a provider failure or an exception while it
  was performed leave ``agreed=None``; none of them fails the call or changes its value.
  A cancellation (Ctrl-C, a cancelled task) still stops the call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from escalate._audit import AuditPlan, compare, key_of
from escalate._deploying import send_once
from escalate._ledger import Ledger
from escalate._outcomes import Answered, TierCall
from escalate._plan import Call, CallInfo, Messages, Plan, Step
from escalate._receipt import AuditVerdict, Receipt
from escalate.gates import gate_name

__all__ = ["Deferred", "Due", "audit_answer"]


@dataclass(frozen=True)
class Due:
    """An audit the walk decided on: everything its request and verdict need."""

    plan: Plan
    call: CallInfo
    messages: Messages
    tier: int
    """The auditing tier's index."""
    of_tier: str
    gates: tuple[str, ...]
    value: Any
    """The returned answer, as the caller holds it."""

    @property
    def spec(self) -> AuditPlan:
        assert self.plan.audit is not None
        return self.plan.audit


def audit_answer(
    plan: Plan, call: CallInfo, index: int, messages: Messages, value: Any, ledger: Ledger
) -> Generator[Step, Any, None]:
    """Audit the answer tier ``index`` gave, if this call is chosen: inline, the verdict
    goes on the ledger; in the background, the :class:`Due` does."""
    due = _due(plan, call, index, messages, value)
    if due is None or _over_budget(due, ledger):
        return
    if due.spec.mode == "background":
        ledger.deferred = due
        return
    ledger.audit = yield from _run(due, ledger, "inline")


def _due(plan: Plan, call: CallInfo, index: int, messages: Messages, value: Any) -> Due | None:
    spec = plan.audit
    if spec is None:
        return None
    target = spec.tier_index(len(plan.tiers))
    if index >= target or not spec.selects():
        return None
    tier = plan.tiers[index]
    gates = tuple(gate_name(gate) for gate in (*plan.gates, *tier.gates))
    return Due(plan, call, messages, target, tier.name, gates, value)


def _over_budget(due: Due, ledger: Ledger) -> bool:
    """Would the audit's request pass the call's budget? Projected as the engine projects a
    move up: the last request's tokens at the auditing tier's price. A call chosen for an
    audit that does not fit makes none, and says so."""
    budget = due.call.budget_usd if due.call.budget_usd is not None else due.plan.budget_usd
    if budget is None:
        return False
    tier = due.plan.tiers[due.tier]
    spent, projected = ledger.spent(), ledger.projected(tier)
    if spent + projected <= budget:
        return False
    ledger.notes.append(
        f"audit: not made: spent ${spent:.6f} + projected ${projected:.6f} on tier "
        f"{tier.name!r} would pass the budget of ${budget}"
    )
    return True


def _run(due: Due, ledger: Ledger, mode: Any) -> Generator[Step, Any, AuditVerdict]:
    plan, call = due.plan, due.call
    tier = plan.tiers[due.tier]
    shape = plan.answer
    context = call.context if call.context is not None else plan.context
    request = Call(tier.deployments[0], due.messages, shape.request_model, None, context)
    result: TierCall | None = None
    try:
        result = yield from send_once(tier, request, "audit", ledger)
    except Exception as error:  # thrown in while the audit was performed: noted, not raised
        ledger.in_flight = None
        ledger.notes.append(
            f"audit: the request to tier {tier.name!r} raised {type(error).__name__}: "
            f"{error}; the audit has no verdict"
        )
    verdict = AuditVerdict(
        tier=tier.name, of_tier=due.of_tier, gates=due.gates, key=due.spec.key_name, mode=mode
    )
    if not isinstance(result, Answered):
        return verdict.model_copy(update={"answer_key": key_of(due.spec, due.value)})
    mine, theirs, agreed = compare(due.spec, due.value, shape.value_of(result.value))
    return verdict.model_copy(update={"answer_key": mine, "audit_key": theirs, "agreed": agreed})


@dataclass(frozen=True)
class Deferred:
    """A background audit: the audit due, and the receipt the call finished with."""

    due: Due
    receipt: Receipt

    @property
    def function(self) -> str:
        return self.receipt.function

    @property
    def loop_bound(self) -> bool:
        """Whether its async request must be made on the caller's event loop (the auditing
        tier was given a ready async client)."""
        deployment = self.due.plan.tiers[self.due.tier].deployments[0]
        return bool(getattr(deployment, "loop_bound", False))

    def steps(self, on_event: Callable[[Any], None] | None) -> Generator[Step, Any, Receipt]:
        """The audit's steps, for a face to perform; returns the amended receipt (same id,
        the audit's attempts and notes added, ``audit`` set with ``mode="background"``).
        ``on_event`` hears its attempts and the :class:`~escalate.events.Audited` event."""
        call = dataclasses.replace(self.due.call, on_event=on_event, trace=None, on_audit=None)
        ledger = Ledger(self.due.plan, call)
        verdict = yield from _run(dataclasses.replace(self.due, call=call), ledger, "background")
        original = self.receipt
        amended = original.model_copy(
            update={
                "attempts": (*original.attempts, *ledger.attempts),
                "notes": (*original.notes, *ledger.notes),
                "audit": verdict,
            }
        )
        ledger.audited(amended)
        return amended
