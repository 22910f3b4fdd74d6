"""One tier's deployments: a request retried on provider failures, then moved sideways.

Part of the engine (no I/O): it yields :class:`~escalate._plan.Call` and
:class:`~escalate._plan.Sleep` steps and reads back what they came to.

Before each request it asks the deployment's circuit breaker (``_breaker``) for leave: an
open breaker turns the request into a ``skipped`` attempt and the tier moves on as after
a provider failure, with no request and no wait. After each request it tells the breaker
what came of it. In the test mode (``escalate.testing.set_testing``) a retry's wait is
noted on the receipt instead of slept.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any

import tenacity

from escalate._breaker import Refusal, Report, Ticket
from escalate._breaker import current as current_breakers
from escalate._ledger import Ledger
from escalate._outcomes import Failed, TierCall
from escalate._plan import Backend, Call, EngineTier, Messages, Plan, Sleep, Step
from escalate._receipt import Purpose
from escalate._retry import Transient, asked_too_long
from escalate._switches import testing_mode
from escalate.exceptions import BreakerOpen

__all__ = ["Request", "send_once", "walk_tier"]


@dataclass(frozen=True, slots=True)
class Request:
    """What one tier is asked: the messages, the model to fill, and why it is asked."""

    messages: Messages
    response_model: type[Any]
    unwrap_partials: bool = False
    purpose: Purpose = "answer"
    reask: int = 0
    context: Mapping[str, Any] | None = None
    choices: int = 1
    """Choices asked for in the one request (``n``) where the deployment can give them."""


def walk_tier(
    plan: Plan, tier: EngineTier, request: Request, ledger: Ledger
) -> Generator[Step, Any, tuple[TierCall, Backend]]:
    """Try the tier's deployments in turn while the provider is what fails."""
    deployments = tier.deployments
    result: TierCall | None = None
    for index, deployment in enumerate(deployments):
        ledger.tier_started(tier.name, deployment.name)
        purpose: Purpose = request.purpose if index == 0 else "retry"
        result = yield from _with_retries(plan, tier, deployment, request, purpose, ledger)
        if not (isinstance(result, Failed) and result.kind == "provider"):
            return result, deployment
        if index + 1 < len(deployments):
            target = (tier.name, deployments[index + 1].name)
            ledger.move("sideways", (tier.name, deployment.name), target, result)
    assert result is not None, "a tier always has at least one deployment"
    return result, deployments[-1]


def _with_retries(
    plan: Plan,
    tier: EngineTier,
    deployment: Backend,
    request: Request,
    purpose: Purpose,
    ledger: Ledger,
) -> Generator[Step, Any, TierCall]:
    """One deployment, retried on provider failures by tenacity's decision machine, as
    long as its circuit breaker lets the requests go."""
    admitted = current_breakers().admit(deployment.breaker_key, tier.breaker)
    if isinstance(admitted, Refusal):
        return _skipped(tier, deployment, admitted, purpose, ledger)
    held = _Held(admitted)
    on_partial = None
    if deployment.streams:
        on_partial = ledger.partials(tier.name, deployment.name, request.unwrap_partials)
    call = Call(
        deployment,
        request.messages,
        request.response_model,
        on_partial,
        request.context,
        request.choices,
    )
    try:
        result = yield from _send(call, tier, held, ledger, purpose, request.reask)
        if not _retryable(result, tier):
            return _slow(result, tier, ledger)  # the common case never builds a retry state
        return (yield from _retry(plan, tier, call, result, held, ledger))
    finally:
        held.release()  # a no-op unless the call was stopped mid-request


def send_once(
    tier: EngineTier, call: Call, purpose: Purpose, ledger: Ledger
) -> Generator[Step, Any, TierCall]:
    """One request to ``call``'s deployment, never retried (an audit's): asked of its
    circuit breaker first (an open one: a ``skipped`` attempt, no request), then sent,
    recorded and reported to the breaker as any request is."""
    deployment = call.deployment
    admitted = current_breakers().admit(deployment.breaker_key, tier.breaker)
    if isinstance(admitted, Refusal):
        return _skipped(tier, deployment, admitted, purpose, ledger)
    held = _Held(admitted)
    try:
        return (yield from _send(call, tier, held, ledger, purpose, 0))
    finally:
        held.release()  # a no-op unless the call was stopped mid-request


@dataclass
class _Held:
    """The breaker's admission for the request in flight (renewed before each retry)."""

    ticket: Ticket

    def release(self) -> None:
        if self.ticket.registry is not None and not self.ticket.done:
            self.ticket.registry.release(self.ticket)


def _send(
    call: Call, tier: EngineTier, held: _Held, ledger: Ledger, purpose: Purpose, reask: int
) -> Generator[Step, Any, TierCall]:
    """One request: sent, recorded, and reported to the deployment's breaker."""
    ledger.sending(tier.name, call.deployment, purpose=purpose)
    result: TierCall = yield call
    ledger.record(result, purpose, reask)
    _report(held.ticket, result, tier, call.deployment, ledger)
    return result


def _retry(
    plan: Plan, tier: EngineTier, call: Call, result: TierCall, held: _Held, ledger: Ledger
) -> Generator[Step, Any, TierCall]:
    """Retries after a provider failure, as tenacity decides: waits, then requests."""
    deployment = call.deployment
    mode = testing_mode()
    retrying = plan.retry.retrying(cap=mode.attempts if mode is not None else None)
    retrying.begin()
    state = tenacity.RetryCallState(retrying, fn=None, args=(), kwargs={})
    _failed_again(state, result, plan, ledger)
    while True:
        try:
            action = retrying.iter(state)
        except Transient as exhausted:
            return exhausted.failed
        if isinstance(action, tenacity.DoSleep):
            state.prepare_for_next_attempt()
            admitted = current_breakers().admit(deployment.breaker_key, tier.breaker)
            if isinstance(admitted, Refusal):
                return _left_open(result, ledger)
            held.ticket = admitted
            if mode is None:
                yield Sleep(float(action))
            else:
                ledger.notes.append(
                    f"test mode: a {float(action):g}s wait before retrying "
                    f"{deployment.name!r} (tier {tier.name!r}) was skipped"
                )
        elif isinstance(action, tenacity.DoAttempt):
            result = yield from _send(call, tier, held, ledger, "retry", 0)
            if _retryable(result, tier):
                _failed_again(state, result, plan, ledger)
            else:
                state.set_result(_slow(result, tier, ledger))
        else:
            return action  # type: ignore[no-any-return]


def _skipped(
    tier: EngineTier, deployment: Backend, refusal: Refusal, purpose: Purpose, ledger: Ledger
) -> Failed:
    """No request: the breaker is open. A provider failure that cost nothing."""
    attempt = ledger.skipped(tier.name, deployment, refusal, purpose)
    assert attempt.reason is not None
    return Failed("provider", "breaker", attempt.reason, BreakerOpen(attempt.reason), (attempt,))


def _left_open(result: TierCall, ledger: Ledger) -> TierCall:
    """A retry was due, but the deployment's breaker opened meanwhile: leave it now."""
    assert isinstance(result, Failed)
    reason = f"{result.reason}; its circuit breaker opened, so the deployment was left unretried"
    ledger.restamp_last(reason=reason)
    return Failed(
        result.kind, result.trigger, reason, result.error, result.attempts, result.retry_after
    )


def _report(
    leave: Ticket, result: TierCall, tier: EngineTier, deployment: Backend, ledger: Ledger
) -> None:
    """Tell the breaker what the request came to; put any change it caused on the record.
    Anything the provider answered counts as its success, even an answer that failed its
    checks; only provider failures count against it."""
    if leave.registry is None:
        return
    outcome: Report = "success"
    reason, retry_after = "", None
    if isinstance(result, Failed):
        if result.kind == "error" or (result.kind == "provider" and _too_slow(result, tier)):
            outcome = "neutral"  # not the provider's failing (a slow tier escalates by policy)
        elif result.kind == "provider":
            outcome, reason, retry_after = "failure", result.reason, result.retry_after
    change = leave.registry.report(leave, outcome, reason=reason, retry_after=retry_after)
    if change is not None:
        ledger.breaker_changed(tier.name, deployment, change)


def _failed_again(
    state: tenacity.RetryCallState, result: TierCall, plan: Plan, ledger: Ledger
) -> None:
    assert isinstance(result, Failed)
    if asked_too_long(result, plan.retry):
        # Say on the receipt why no retry follows a provider that asked us to wait.
        ledger.restamp_last(
            reason=f"{result.reason}; Retry-After {result.retry_after:g}s is above "
            f"max_retry_after={plan.retry.max_retry_after:g}s, so the deployment was left "
            "at once"
        )
    state.set_exception((Transient, Transient(result), None))


def _retryable(result: TierCall, tier: EngineTier) -> bool:
    if not (isinstance(result, Failed) and result.kind == "provider"):
        return False
    return not _too_slow(result, tier)


def _too_slow(result: Failed, tier: EngineTier) -> bool:
    return result.trigger == "timeout" and tier.on_timeout == "escalate"


def _slow(result: TierCall, tier: EngineTier, ledger: Ledger) -> TierCall:
    """A timeout on a tier set to escalate on timeouts: too slow, so move up at once."""
    timed_out = isinstance(result, Failed) and result.trigger == "timeout"
    if not (timed_out and tier.on_timeout == "escalate"):
        return result
    assert isinstance(result, Failed)
    reason = f"too slow: {result.reason}"
    ledger.restamp_last(outcome="rejected", trigger="slow", reason=reason)
    return Failed("quality", "slow", reason, result.error, result.attempts)
