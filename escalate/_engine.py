"""The decision core: the walk over tiers, free of I/O.

:func:`walk` is a generator. It yields *steps* (:class:`Call` a deployment, :class:`Sleep`
for a backoff) and is sent back what each step came to; it returns ``(value, receipt)`` or
raises. The sync and async faces in ``_faces`` are the only code that performs steps, so
both share every decision and every test of a decision. It knows no SDK, no instructor,
no asyncio and no decorator.

Two kinds of trouble are never confused:

- a *quality failure* (validation, a gate, a matched ``on``) moves the task **up** a tier;
- a *provider failure* (429, 5xx, 529, timeout, connection) is retried on the same
  deployment with backoff (tenacity's own decision machine, honouring Retry-After), then
  moved **sideways** to the tier's next deployment, then up or raised, by policy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import tenacity

from escalate._outcomes import Answered, Failed, TierCall
from escalate._receipt import Attempt, Move, Receipt
from escalate.exceptions import AllTiersFailed, ConfigurationError, ProviderExhausted

__all__ = ["Call", "Plan", "Retry", "Sleep", "Step", "walk"]

Messages = list[dict[str, Any]]


class DeploymentLike(Protocol):
    @property
    def name(self) -> str: ...


class TierLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def deployments(self) -> Sequence[Any]: ...


@dataclass(frozen=True, slots=True)
class Call:
    """Send ``messages`` to ``deployment``; reply with the :data:`TierCall` it came to."""

    deployment: Any
    messages: Messages
    response_model: type[Any]


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait before retrying; reply with ``None``."""

    seconds: float


Step = Call | Sleep


@dataclass(frozen=True, kw_only=True)
class Retry:
    """How provider failures are retried on one deployment before moving sideways.

    ``attempts`` counts requests, the first included. Waits grow exponentially from
    ``initial`` to ``max`` seconds with up to ``jitter`` seconds of jitter; a Retry-After
    from the provider is honoured instead, unless it asks for more than
    ``max_retry_after`` seconds, in which case the deployment is left at once.
    """

    attempts: int = 3
    initial: float = 0.5
    max: float = 8.0
    jitter: float = 0.5
    max_retry_after: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ConfigurationError(f"Retry.attempts must be an int >= 1, got {self.attempts!r}")
        for name in ("initial", "max", "jitter", "max_retry_after"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ConfigurationError(f"Retry.{name} must be a number >= 0, got {value!r}")

    def retrying(self) -> tenacity.Retrying:
        """A fresh tenacity state machine (they hold per-run state, so one per run)."""
        fallback = tenacity.wait_exponential_jitter(
            multiplier=self.initial, max=self.max, jitter=self.jitter
        )
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts) | _RetryAfterTooLong(self),
            wait=_WaitRetryAfter(fallback),
            retry=tenacity.retry_if_exception_type(_Transient),
            reraise=True,
        )


class _Transient(Exception):
    """Carries a provider failure through tenacity's machinery."""

    def __init__(self, failed: Failed) -> None:
        super().__init__(failed.reason)
        self.failed = failed


def _retry_after_of(state: tenacity.RetryCallState) -> float | None:
    error = state.outcome.exception() if state.outcome is not None else None
    return error.failed.retry_after if isinstance(error, _Transient) else None


@dataclass(frozen=True)
class _WaitRetryAfter(tenacity.wait.wait_base):
    fallback: tenacity.wait.wait_base

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        asked = _retry_after_of(retry_state)
        return asked if asked is not None else self.fallback(retry_state)


@dataclass(frozen=True)
class _RetryAfterTooLong(tenacity.stop.stop_base):
    policy: Retry

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        asked = _retry_after_of(retry_state)
        return asked is not None and asked > self.policy.max_retry_after


Trigger = Callable[[BaseException], bool]


@dataclass(frozen=True)
class Plan:
    """Everything the walk needs to know, checked once when the decorator is applied."""

    function: str
    tiers: tuple[Any, ...]
    response_model: type[Any]
    on: Trigger
    retry: Retry = field(default_factory=Retry)
    on_provider_exhausted: Literal["escalate", "raise"] = "escalate"
    carry_failure: bool = False


class _Ledger:
    """The attempts and moves of one call, and the receipt they make."""

    def __init__(self, function: str) -> None:
        self.function = function
        self.started = time.perf_counter()
        self.started_at = datetime.now(UTC)
        self.attempts: list[Attempt] = []
        self.moves: list[Move] = []

    def receipt(self, outcome: Literal["answered", "failed", "error"], by: str | None) -> Receipt:
        return Receipt(
            function=self.function,
            outcome=outcome,
            answered_by=by,
            attempts=tuple(self.attempts),
            moves=tuple(self.moves),
            started_at=self.started_at,
            latency_s=time.perf_counter() - self.started,
        )

    def restamp_last(self, **changes: Any) -> None:
        if self.attempts:
            self.attempts[-1] = self.attempts[-1].model_copy(update=changes)

    def move(
        self,
        kind: Literal["up", "sideways"],
        source: tuple[str, str],
        target: tuple[str | None, str | None],
        failed: Failed,
    ) -> None:
        self.moves.append(
            Move(
                kind=kind,
                from_tier=source[0],
                from_deployment=source[1],
                to_tier=target[0],
                to_deployment=target[1],
                trigger=failed.trigger,
                reason=failed.reason,
            )
        )


Walk = Generator[Step, Any, tuple[Any, Receipt]]


def walk(plan: Plan, messages: Messages, *, start: int = 0) -> Walk:
    """Walk the tiers from ``start`` until one answers; see the module docstring."""
    ledger = _Ledger(plan.function)
    last: Failed | None = None
    for index in range(start, len(plan.tiers)):
        tier = plan.tiers[index]
        result, deployment = yield from _walk_tier(plan, tier, messages, ledger)
        if isinstance(result, Answered):
            return result.value, ledger.receipt("answered", tier.name)
        last = result = _judge(plan, result, ledger)
        upper = plan.tiers[index + 1] if index + 1 < len(plan.tiers) else None
        target = (upper.name, upper.deployments[0].name) if upper is not None else (None, None)
        ledger.move("up", (tier.name, deployment.name), target, result)
        if result.kind == "provider" and plan.on_provider_exhausted == "raise":
            raise ProviderExhausted(
                f"every deployment of tier {tier.name!r} failed at the provider "
                f"({result.reason}); on_provider_exhausted='raise'",
                receipt=ledger.receipt("failed", None),
            ) from result.error
        if plan.carry_failure and result.kind == "quality":
            messages = _with_failure(messages, result)
    assert last is not None, "a plan always has at least one tier"
    receipt = ledger.receipt("failed", None)
    raise AllTiersFailed(_failure_message(receipt), receipt=receipt) from last.error


def _walk_tier(
    plan: Plan, tier: Any, messages: Messages, ledger: _Ledger
) -> Generator[Step, Any, tuple[TierCall, Any]]:
    """Try the tier's deployments in turn while the provider is what fails."""
    deployments = tier.deployments
    for index, deployment in enumerate(deployments):
        result = yield from _with_retries(plan, deployment, messages, ledger)
        if not (isinstance(result, Failed) and result.kind == "provider"):
            return result, deployment
        if index + 1 < len(deployments):
            target = (tier.name, deployments[index + 1].name)
            ledger.move("sideways", (tier.name, deployment.name), target, result)
    return result, deployment


def _with_retries(
    plan: Plan, deployment: Any, messages: Messages, ledger: _Ledger
) -> Generator[Step, Any, TierCall]:
    """One deployment, retried on provider failures by tenacity's decision machine."""
    call = Call(deployment, messages, plan.response_model)
    result: TierCall = yield call
    ledger.attempts.extend(result.attempts)
    if not (isinstance(result, Failed) and result.kind == "provider"):
        return result  # the common case never builds a retry state
    retrying = plan.retry.retrying()
    retrying.begin()
    state = tenacity.RetryCallState(retrying, fn=None, args=(), kwargs={})
    state.set_exception((_Transient, _Transient(result), None))
    while True:
        try:
            action = retrying.iter(state)
        except _Transient as exhausted:
            return exhausted.failed
        if isinstance(action, tenacity.DoSleep):
            state.prepare_for_next_attempt()
            yield Sleep(float(action))
        elif isinstance(action, tenacity.DoAttempt):
            result = yield call
            ledger.attempts.extend(result.attempts)
            if isinstance(result, Failed) and result.kind == "provider":
                state.set_exception((_Transient, _Transient(result), None))
            else:
                state.set_result(result)
        else:
            return action  # type: ignore[no-any-return]


def _judge(plan: Plan, result: Failed, ledger: _Ledger) -> Failed:
    """A failure no trigger matches passes through, unchanged."""
    if result.kind != "other":
        return result
    if not plan.on(result.error):
        raise result.error
    ledger.restamp_last(outcome="rejected", trigger="on")
    return Failed("quality", "on", result.reason, result.error, result.attempts)


def _with_failure(messages: Messages, failed: Failed) -> Messages:
    raw = next((a.raw_output for a in reversed(failed.attempts) if a.raw_output), None)
    feedback = f"A previous answer to this was rejected ({failed.trigger}): {failed.reason}"
    extra: Messages = []
    if raw is not None:
        extra.append({"role": "assistant", "content": raw})
    extra.append({"role": "user", "content": feedback + "\nAnswer again, correctly."})
    return [*messages, *extra]


def _failure_message(receipt: Receipt) -> str:
    lines = [f"all {len(receipt.tiers_tried)} tier(s) failed for {receipt.function}:"]
    for attempt in receipt.attempts:
        lines.append(
            f"  {attempt.tier} [{attempt.deployment}] {attempt.outcome}"
            f" ({attempt.trigger}): {attempt.reason}"
        )
    lines.append("receipt_of(error) (or error.receipt) holds every attempt and its raw output")
    return "\n".join(lines)
