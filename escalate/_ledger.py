"""The ledger of one call: its attempts and moves as they happen, its events, its receipt.

The engine writes here and nowhere else, so what hooks hear and what the receipt says
can never disagree.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from escalate._breaker import Change, Refusal
from escalate._outcomes import Failed, TierCall
from escalate._plan import Backend, CallInfo, EngineTier, Plan
from escalate._receipt import Attempt, AuditVerdict, CallOutcome, Move, Purpose, Receipt, Route
from escalate._self_escalation import SelfEscalated
from escalate.events import (
    AttemptFinished,
    Audited,
    BreakerClosed,
    BreakerOpened,
    Escalated,
    Finished,
    MovedSideways,
    PartialAnswer,
    TierStarted,
)

__all__ = ["Ledger"]


class Ledger:
    """The attempts and moves of one call, and the receipt they make."""

    def __init__(self, plan: Plan, call: CallInfo) -> None:
        self.function = plan.function
        self.call = call
        self.route = call.route or Route(start_tier=plan.tiers[call.start].name)
        self.emit = call.on_event
        self.self_escalations = 0
        self.started = time.perf_counter()
        self.started_at = datetime.now(UTC)
        self.attempts: list[Attempt] = []
        self.moves: list[Move] = []
        self.notes: list[str] = []
        self.in_flight: tuple[str, Backend, int, float, datetime, Purpose] | None = None
        """The tier, deployment, request count, start and purpose of the step being
        performed."""
        self.audit: AuditVerdict | None = None
        """The verdict of this call's inline audit (see ``_auditing``)."""
        self.deferred: Any = None
        """The audit this call leaves to the background (an ``_auditing.Due``)."""
        self.best: tuple[Any, str] | None = None
        """The best answer so far that failed its gates (the strongest tier's latest),
        and its tier: what ``when_unmet="best_effort"`` returns."""

    def receipt(self, outcome: CallOutcome, by: str | None) -> Receipt:
        return Receipt(
            function=self.function,
            task=self.call.task,
            tags=dict(self.call.tags),
            outcome=outcome,
            answered_by=by,
            route=self.route,
            attempts=tuple(self.attempts),
            moves=tuple(self.moves),
            started_at=self.started_at,
            finished_at=datetime.now(UTC),
            latency_s=time.perf_counter() - self.started,
            notes=tuple(self.notes),
            audit=self.audit,
        )

    def finished(self, receipt: Receipt, result: Any = None, error: Any = None) -> None:
        if self.emit is not None:
            self.emit(Finished(self.function, receipt, result=result, error=error))

    # --- attempts ----------------------------------------------------------------------

    def audited(self, receipt: Receipt) -> None:
        """The receipt now carries its audit's verdict: tell the listeners."""
        if self.emit is not None and receipt.audit is not None:
            self.emit(Audited(self.function, receipt.audit, receipt))

    def sending(
        self, tier: str, deployment: Backend, count: int = 1, purpose: Purpose = "answer"
    ) -> None:
        started = (time.perf_counter(), datetime.now(UTC))
        self.in_flight = (tier, deployment, count, *started, purpose)

    def record(self, result: TierCall, purpose: Purpose, reask: int = 0) -> None:
        """The attempts of one step: the first made for ``purpose``, any further ones
        (instructor's re-asks after a validation error) as re-asks."""
        self.in_flight = None
        for index, attempt in enumerate(result.attempts):
            wanted = purpose if index == 0 or purpose == "audit" else "reask"
            if purpose == "answer" and reask and index == 0:
                wanted = "reask"
            if wanted != attempt.purpose or reask:  # the common first answer needs no copy
                update = {"reask": reask + attempt.reask, "purpose": wanted}
                if purpose == "audit":  # an audit's own re-asks (instructor's) stay audits
                    update["reask"] = index
                attempt = attempt.model_copy(update=update)
            self.attempts.append(attempt)
            if self.emit is not None:
                self.emit(AttemptFinished(self.function, attempt))

    def skipped(
        self, tier: str, deployment: Backend, refusal: Refusal, purpose: Purpose
    ) -> Attempt:
        """A request an open circuit breaker turned away: on the receipt, free."""
        if refusal.remaining is None:
            until = "until another call's probe request has ended"
        else:
            until = f"for another {refusal.remaining:.3g}s, then one probe request may go"
        attempt = Attempt(
            tier=tier,
            deployment=deployment.name,
            provider=deployment.provider_name,
            requested_model=deployment.model,
            purpose=purpose,
            outcome="skipped",
            trigger="breaker",
            reason=f"skipped: circuit breaker open ({refusal.reason}); it stays open {until}",
            cost_usd=Decimal(0),
            cost_note="skipped by an open circuit breaker: no request was made",
            started_at=datetime.now(UTC),
        )
        self.attempts.append(attempt)
        if self.emit is not None:
            self.emit(AttemptFinished(self.function, attempt))
        return attempt

    def breaker_changed(self, tier: str, deployment: Backend, change: Change) -> None:
        """This call's request opened or closed a deployment's breaker: say so on the
        receipt and to the listeners."""
        self.notes.append(
            f"breaker of {deployment.name!r} (tier {tier!r}) {change.kind}: {change.reason}"
        )
        if self.emit is None:
            return
        who = (self.function, tier, deployment.name, deployment.provider_name, deployment.model)
        if change.kind == "opened":
            event: Any = BreakerOpened(
                *who, change.failures, change.cooldown, change.reason, change.probe
            )
        else:
            event = BreakerClosed(*who, change.reason)
        self.emit(event)

    def cancelled(self, why: str) -> None:
        """The step in flight when the call was stopped: its requests may have been billed,
        so each is on the receipt, its cost unknown."""
        if self.in_flight is None:
            self.notes.append(f"cancelled: {why}")
            return
        tier, deployment, count, started, started_at, purpose = self.in_flight
        self.in_flight = None
        for _ in range(count):
            self.attempts.append(
                Attempt(
                    tier=tier,
                    deployment=deployment.name,
                    provider=deployment.provider_name,
                    requested_model=deployment.model,
                    purpose="audit" if purpose == "audit" else "answer",
                    outcome="cancelled",
                    trigger="cancelled",
                    reason=f"the call was stopped while this request was in flight ({why})",
                    cost_note="stopped in flight: the provider may have billed tokens",
                    latency_s=time.perf_counter() - started,
                    started_at=started_at,
                )
            )

    def restamp_last(self, **changes: Any) -> None:
        self.restamp(len(self.attempts) - 1, **changes)

    def restamp(self, index: int, **changes: Any) -> None:
        if 0 <= index < len(self.attempts):
            self.attempts[index] = self.attempts[index].model_copy(update=changes)

    def spent(self) -> Decimal:
        return sum((a.cost_usd for a in self.attempts if a.cost_usd is not None), Decimal(0))

    def projected(self, tier: EngineTier) -> Decimal:
        """What one more request on ``tier`` would cost: the last attempt's tokens at the
        tier's price; 0 when there is no attempt yet or the price is unknown."""
        last = self.attempts[-1] if self.attempts else None
        if last is None:
            return Decimal(0)
        estimate = tier.deployments[0].estimate_cost(
            last.input_tokens or 0, last.output_tokens or 0
        )
        return estimate or Decimal(0)

    # --- events ------------------------------------------------------------------------

    def tier_started(self, tier: str, deployment: str) -> None:
        if self.emit is not None:
            self.emit(TierStarted(self.function, tier, deployment))

    def partials(self, tier: str, deployment: str, unwrap: bool) -> Callable[[Any], None] | None:
        """The callback for a streaming tier's partial answers (None when nobody listens).
        ``unwrap``: the answer sits inside a wrapper's ``answer`` field."""
        emit = self.emit
        if emit is None:
            return None

        def partial(value: Any) -> None:
            answer = getattr(value, "answer", None) if unwrap else value
            if answer is not None:
                emit(PartialAnswer(self.function, tier, deployment, answer))

        return partial

    def move(
        self,
        kind: Literal["up", "sideways"],
        source: tuple[str, str],
        target: tuple[str, str],
        failed: Failed,
    ) -> None:
        error = failed.error
        question = error.request.question if isinstance(error, SelfEscalated) else None
        move = Move(
            kind=kind,
            from_tier=source[0],
            from_deployment=source[1],
            to_tier=target[0],
            to_deployment=target[1],
            trigger=failed.trigger,  # type: ignore[arg-type]
            gate=failed.gate,
            reason=failed.reason,
            question=question,
        )
        self.moves.append(move)
        if self.emit is None:
            return
        if kind == "up":
            event: Any = Escalated(
                self.function, source[0], target[0], move.trigger, move.reason, question
            )
        else:
            event = MovedSideways(
                self.function, source[0], source[1], target[1], move.trigger, move.reason
            )
        self.emit(event)
