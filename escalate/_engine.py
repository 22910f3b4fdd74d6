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
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import tenacity

from escalate._option import EscalationOption, ModelEscalated, option_model
from escalate._outcomes import Answered, Failed, TierCall
from escalate._receipt import Attempt, Move, Receipt, ReceiptOutcome
from escalate.events import (
    AttemptFinished,
    Escalated,
    Finished,
    MovedSideways,
    PartialAnswer,
    TierStarted,
)
from escalate.exceptions import (
    AllTiersFailed,
    BudgetExceeded,
    ConfigurationError,
    EscalationFailed,
    ProviderExhausted,
)
from escalate.gates import GateContext, Rejected

__all__ = ["Call", "CallInfo", "Check", "Plan", "Retry", "Sleep", "Step", "Verdict", "walk"]

Messages = list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Call:
    """Send ``messages`` to ``deployment``; reply with the :data:`TierCall` it came to.
    ``on_partial``, when set, receives a streaming tier's partial answers."""

    deployment: Any
    messages: Messages
    response_model: type[Any]
    on_partial: Callable[[Any], None] | None = None


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait before retrying; reply with ``None``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Check:
    """Run ``gates`` on ``answer`` in order; reply with the :class:`Verdict`."""

    gates: tuple[Any, ...]
    answer: Any
    context: GateContext


@dataclass(frozen=True, slots=True)
class Sample:
    """Make ``call`` ``count`` more times (concurrently where the face can); reply with
    the list of :data:`TierCall` they came to."""

    call: Call
    count: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the gates said: the scores they recorded, and the first rejection if any."""

    scores: dict[str, float]
    rejected_by: str | None = None
    rejection: Rejected | None = None


Step = Call | Sleep | Check | Sample


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
    gates: tuple[Any, ...] = ()
    """Gates for every tier; a tier's own gates run after these."""
    when_unmet: Literal["raise", "best"] = "raise"
    """When no answer passes (or the budget stops the walk): raise, or return the best
    answer so far with the receipt's outcome ``best_effort``."""
    budget_usd: Decimal | None = None
    route: Callable[..., Any] | None = None
    """Chooses the starting tier from the call's arguments (see ``_routing``)."""
    option: EscalationOption | None = None
    """Offer the cheaper tiers the choice to escalate (see ``_option``)."""


@dataclass(frozen=True)
class CallInfo:
    """What one call adds to the plan: its arguments and where it starts."""

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    start: int = 0
    route: str | None = None
    budget_usd: Decimal | None = None
    on_event: Callable[[Any], None] | None = None
    """Receives the call's events (see ``escalate.events``); None when nobody listens."""


class _Ledger:
    """The attempts and moves of one call, and the receipt they make."""

    def __init__(self, function: str, call: CallInfo) -> None:
        self.function = function
        self.route = call.route
        self.emit = call.on_event
        self.model_escalations = 0
        self.started = time.perf_counter()
        self.started_at = datetime.now(UTC)
        self.attempts: list[Attempt] = []
        self.moves: list[Move] = []
        self.notes: list[str] = []

    def receipt(self, outcome: ReceiptOutcome, by: str | None) -> Receipt:
        return Receipt(
            function=self.function,
            outcome=outcome,
            answered_by=by,
            attempts=tuple(self.attempts),
            moves=tuple(self.moves),
            started_at=self.started_at,
            latency_s=time.perf_counter() - self.started,
            route=self.route,
            notes=tuple(self.notes),
        )

    def restamp_last(self, **changes: Any) -> None:
        self.restamp(len(self.attempts) - 1, **changes)

    def restamp(self, index: int, **changes: Any) -> None:
        if 0 <= index < len(self.attempts):
            self.attempts[index] = self.attempts[index].model_copy(update=changes)

    def record_extra(self, result: TierCall, why: str) -> None:
        """An attempt a gate asked for (a sample, a follow-up question): not an answer to
        the call, so it says what it was for."""
        if isinstance(result, Answered):
            result = Answered(
                result.value,
                tuple(a.model_copy(update={"trigger": why}) for a in result.attempts),
                result.completion,
            )
        self.record(result)

    def record(self, result: TierCall) -> None:
        self.attempts.extend(result.attempts)
        if self.emit is not None:
            for attempt in result.attempts:
                self.emit(AttemptFinished(self.function, attempt))

    def tier_started(self, tier: str, deployment: str) -> None:
        if self.emit is not None:
            self.emit(TierStarted(self.function, tier, deployment))

    def partials(self, tier: str, deployment: str, wrapped: bool) -> Callable[[Any], None] | None:
        """The callback for a streaming tier's partial answers (None when nobody listens).
        ``wrapped``: the answer sits inside the escalation option's ``answer`` field."""
        emit = self.emit
        if emit is None:
            return None

        def partial(value: Any) -> None:
            answer = getattr(value, "answer", None) if wrapped else value
            if answer is not None:
                emit(PartialAnswer(self.function, tier, deployment, answer))

        return partial

    def spent(self) -> Decimal:
        return sum((a.cost_usd for a in self.attempts if a.cost_usd is not None), Decimal(0))

    def move(
        self,
        kind: Literal["up", "sideways"],
        source: tuple[str, str],
        target: tuple[str | None, str | None],
        failed: Failed,
    ) -> None:
        error = failed.error
        question = error.request.question if isinstance(error, ModelEscalated) else None
        move = Move(
            kind=kind,
            from_tier=source[0],
            from_deployment=source[1],
            to_tier=target[0],
            to_deployment=target[1],
            trigger=failed.trigger,
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
                self.function, source[0], source[1], target[1] or "", move.trigger, move.reason
            )
        self.emit(event)


@dataclass
class _Best:
    """The best answer so far that failed its gates: the strongest tier's latest."""

    value: Any = None
    tier: str | None = None


Walk = Generator[Step, Any, tuple[Any, Receipt]]


def walk(plan: Plan, messages: Messages, call: CallInfo | None = None) -> Walk:
    """Walk the tiers from ``call.start`` until one answers; see the module docstring."""
    call = call or CallInfo()
    ledger = _Ledger(plan.function, call)
    if ledger.emit is None:
        return (yield from _walk(plan, messages, call, ledger))
    try:
        value, receipt = yield from _walk(plan, messages, call, ledger)
    except GeneratorExit:
        raise
    except BaseException as error:
        failed = error.receipt if isinstance(error, EscalationFailed) else None
        receipt = failed or ledger.receipt("error", None)
        ledger.emit(Finished(plan.function, receipt, error=error))
        raise
    ledger.emit(Finished(plan.function, receipt, result=value))
    return value, receipt


def _walk(plan: Plan, messages: Messages, call: CallInfo, ledger: _Ledger) -> Walk:
    best = _Best()
    budget = call.budget_usd if call.budget_usd is not None else plan.budget_usd
    last: Failed | None = None
    for index in range(call.start, len(plan.tiers)):
        tier = plan.tiers[index]
        if last is not None and budget is not None and _over_budget(ledger, tier, budget):
            return _unmet(plan, ledger, best, last, BudgetExceeded)
        result, deployment = yield from _answer_on_tier(plan, call, index, messages, ledger, best)
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
        if plan.carry_failure and result.kind == "quality" and result.trigger != "model":
            messages = _with_failure(messages, result)
    assert last is not None, "a plan always has at least one tier"
    return _unmet(plan, ledger, best, last, AllTiersFailed)


def _answer_on_tier(
    plan: Plan,
    call: CallInfo,
    index: int,
    messages: Messages,
    ledger: _Ledger,
    best: _Best,
) -> Generator[Step, Any, tuple[TierCall, Any]]:
    """One tier: an answer, checked by the gates, re-asked with their reason if allowed."""
    tier = plan.tiers[index]
    gates = plan.gates + tuple(getattr(tier, "gates", ()))
    offer = _offers_option(plan, index, ledger)
    for reask in range(getattr(tier, "gate_reasks", 0) + 1):
        request = _request(plan, messages, offer)
        result, deployment = yield from _walk_tier(plan, tier, request, ledger)
        if offer and isinstance(result, Answered):
            result = _took_option(result, ledger)
        if not isinstance(result, Answered) or not gates:
            return result, deployment
        answer_at = len(ledger.attempts) - 1  # gates' samples and follow-ups come after it
        samples: tuple[Any, ...] = ()
        if (wanted := max(getattr(gate, "samples", 1) for gate in gates)) > 1:
            samples = yield from _sample(deployment, request, wanted - 1, result, offer, ledger)
            result = _majority(gates, samples, result)
        follow_up = yield from _follow_up(gates, deployment, messages, result, ledger)
        context = GateContext(
            messages=messages,
            tier=tier.name,
            deployment=deployment.name,
            provider=result.attempts[-1].provider if result.attempts else "",
            model=result.attempts[-1].requested_model if result.attempts else "",
            completion=result.completion,
            attempt=result.attempts[-1] if result.attempts else None,
            args=call.args,
            kwargs=call.kwargs,
            is_last_tier=index == len(plan.tiers) - 1,
            samples=samples,
            follow_up=follow_up,
        )
        verdict: Verdict = yield Check(gates, result.value, context)
        if verdict.rejection is None:
            ledger.restamp(answer_at, scores=verdict.scores)
            return result, deployment
        reason = f"{verdict.rejected_by}: {verdict.rejection.reason}"
        ledger.restamp(
            answer_at, outcome="rejected", trigger="gate", reason=reason, scores=verdict.scores
        )
        best.value, best.tier = result.value, tier.name
        failed = Failed("quality", "gate", reason, verdict.rejection, result.attempts)
        if reask < getattr(tier, "gate_reasks", 0):
            messages = _with_failure(messages, failed)
    return failed, deployment


def _sample(
    deployment: Any, request: _Request, count: int, first: Answered, wrapped: bool, ledger: _Ledger
) -> Generator[Step, Any, tuple[Any, ...]]:
    """``count`` more answers from the same deployment, for a consistency gate; each is an
    attempt on the receipt (its cost counted), and failed samples are left out.
    ``wrapped``: answers sit in the escalation option's ``answer`` field."""
    call = Call(deployment, request.messages, request.response_model)
    results: list[TierCall] = yield Sample(call, count)
    answers = [first.value]
    for result in results:
        ledger.record_extra(result, "sample")
        if isinstance(result, Answered):
            value = result.value.answer if wrapped else result.value
            if value is not None:
                answers.append(value)
    return tuple(answers)


def _follow_up(
    gates: tuple[Any, ...], deployment: Any, messages: Messages, answered: Answered, ledger: _Ledger
) -> Generator[Step, Any, Any]:
    """The tier's reply to the first gate's follow-up request (None if none or failed)."""
    asker = next((gate for gate in gates if hasattr(gate, "follow_up")), None)
    if asker is None:
        return None
    follow_messages, model = asker.follow_up(answered.value, messages)
    reply: TierCall = yield Call(deployment, follow_messages, model)
    ledger.record_extra(reply, "follow_up")
    return reply.value if isinstance(reply, Answered) else None


def _majority(gates: tuple[Any, ...], samples: tuple[Any, ...], first: Answered) -> Answered:
    """The answer a gate with ``choose`` picks among the samples (the majority)."""
    chooser = next((gate for gate in gates if hasattr(gate, "choose")), None)
    if chooser is None:
        return first
    return Answered(chooser.choose(samples), first.attempts, first.completion)


def _offers_option(plan: Plan, index: int, ledger: _Ledger) -> bool:
    """Cheaper tiers may ask to escalate, until the loop guard's count is reached; the
    strongest tier never may."""
    return (
        plan.option is not None
        and index < len(plan.tiers) - 1
        and ledger.model_escalations < plan.option.max_escalations
    )


@dataclass(frozen=True, slots=True)
class _Request:
    messages: Messages
    response_model: type[Any]


def _request(plan: Plan, messages: Messages, offer: bool) -> _Request:
    if not offer:
        return _Request(messages, plan.response_model)
    assert plan.option is not None
    policy = {"role": "system", "content": plan.option.policy}
    model: Any = plan.response_model
    return _Request([policy, *messages], option_model(model))


def _took_option(result: Answered, ledger: _Ledger) -> TierCall:
    """Unwrap an answer from the option model, or turn an escalate choice into a move up."""
    request = result.value.escalate
    if request is None:
        return Answered(result.value.answer, result.attempts, result.completion)
    ledger.model_escalations += 1
    reason = f"the model asked to escalate: {request.reason}"
    ledger.restamp_last(outcome="rejected", trigger="model", reason=reason)
    return Failed("quality", "model", reason, ModelEscalated(request), result.attempts)


def _walk_tier(
    plan: Plan, tier: Any, request: _Request, ledger: _Ledger
) -> Generator[Step, Any, tuple[TierCall, Any]]:
    """Try the tier's deployments in turn while the provider is what fails."""
    deployments = tier.deployments
    for index, deployment in enumerate(deployments):
        ledger.tier_started(tier.name, deployment.name)
        result = yield from _with_retries(plan, tier, deployment, request, ledger)
        if not (isinstance(result, Failed) and result.kind == "provider"):
            return result, deployment
        if index + 1 < len(deployments):
            target = (tier.name, deployments[index + 1].name)
            ledger.move("sideways", (tier.name, deployment.name), target, result)
    return result, deployment


def _with_retries(
    plan: Plan, tier: Any, deployment: Any, request: _Request, ledger: _Ledger
) -> Generator[Step, Any, TierCall]:
    """One deployment, retried on provider failures by tenacity's decision machine."""
    on_partial = None
    if getattr(deployment, "streams", False):
        wrapped = request.response_model is not plan.response_model
        on_partial = ledger.partials(tier.name, deployment.name, wrapped)
    call = Call(deployment, request.messages, request.response_model, on_partial)
    result: TierCall = yield call
    ledger.record(result)
    if not _retryable(result, tier):
        return _slow(result, tier, ledger)  # the common case never builds a retry state
    retrying = plan.retry.retrying()
    retrying.begin()
    state = tenacity.RetryCallState(retrying, fn=None, args=(), kwargs={})
    state.set_exception((_Transient, _Transient(result), None))  # type: ignore[arg-type]
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
            ledger.record(result)
            if _retryable(result, tier):
                state.set_exception((_Transient, _Transient(result), None))  # type: ignore[arg-type]
            else:
                state.set_result(_slow(result, tier, ledger))
        else:
            return action  # type: ignore[no-any-return]


def _retryable(result: TierCall, tier: Any) -> bool:
    if not (isinstance(result, Failed) and result.kind == "provider"):
        return False
    return not (result.trigger == "timeout" and getattr(tier, "on_timeout", "retry") == "escalate")


def _slow(result: TierCall, tier: Any, ledger: _Ledger) -> TierCall:
    """A timeout on a tier set to escalate on timeouts: too slow, so move up at once."""
    timed_out = isinstance(result, Failed) and result.trigger == "timeout"
    if not (timed_out and getattr(tier, "on_timeout", "retry") == "escalate"):
        return result
    assert isinstance(result, Failed)
    reason = f"too slow: {result.reason}"
    ledger.restamp_last(outcome="rejected", trigger="slow", reason=reason)
    return Failed("quality", "slow", reason, result.error, result.attempts)


def _judge(plan: Plan, result: Failed, ledger: _Ledger) -> Failed:
    """A failure no trigger matches passes through, unchanged."""
    if result.kind != "other":
        return result
    if not plan.on(result.error):
        raise result.error
    ledger.restamp_last(outcome="rejected", trigger="on")
    return Failed("quality", "on", result.reason, result.error, result.attempts)


def _over_budget(ledger: _Ledger, tier: Any, budget: Decimal) -> bool:
    """Would one more request, on ``tier``, pass the budget? Projected from the last
    attempt's tokens at the next tier's price; when that price is unknown, only what was
    already spent counts."""
    spent = ledger.spent()
    projected = Decimal(0)
    estimate = getattr(tier.deployments[0], "estimate_cost", None)
    last = ledger.attempts[-1] if ledger.attempts else None
    if estimate is not None and last is not None:
        projected = estimate(last.input_tokens or 0, last.output_tokens or 0) or Decimal(0)
    if spent + projected <= budget:
        return False
    ledger.notes.append(
        f"budget: stopped before tier {tier.name!r}: spent ${spent:.6f} + projected "
        f"${projected:.6f} would pass the budget of ${budget}"
    )
    return True


def _unmet(
    plan: Plan,
    ledger: _Ledger,
    best: _Best,
    last: Failed,
    error_type: type[AllTiersFailed] | type[BudgetExceeded],
) -> tuple[Any, Receipt]:
    """No answer passed: the best one so far if the plan allows it, else raise."""
    if plan.when_unmet == "best" and best.tier is not None:
        ledger.notes.append(f"best effort: the answer of {best.tier!r} failed its gates")
        return best.value, ledger.receipt("best_effort", best.tier)
    receipt = ledger.receipt("failed", None)
    message = _failure_message(receipt)
    if error_type is BudgetExceeded:
        message = f"{receipt.notes[-1]}\n{message}"
    raise error_type(message, receipt=receipt) from last.error


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
