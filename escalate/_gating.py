"""One tier's answer: asked for, unwrapped, checked by the gates, re-asked if allowed.

Part of the engine (no I/O). A gate that wants more of the tier than its answer (a
consistency gate's samples, a follow-up question) gets it here, and every such request is
an attempt on the receipt with its purpose, so its cost is counted.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from typing import Any

from escalate._deploying import Request, walk_tier
from escalate._ledger import Ledger
from escalate._outcomes import Answered, Failed, TierCall
from escalate._plan import (
    Backend,
    CachingBackend,
    Call,
    CallInfo,
    Check,
    ChoicesBackend,
    Messages,
    Plan,
    Sample,
    Step,
    Verdict,
)
from escalate._receipt import Purpose
from escalate._self_escalation import SelfEscalated, choice_model
from escalate.gates import GateContext
from escalate.gates._protocol import FollowUpGate, SamplingGate

__all__ = ["answer_on_tier", "with_failure"]


def answer_on_tier(
    plan: Plan, call: CallInfo, index: int, messages: Messages, ledger: Ledger
) -> Generator[Step, Any, tuple[TierCall, str]]:
    """The tier's answer, checked by the gates, and the deployment that gave it."""
    tier = plan.tiers[index]
    gates = (*plan.gates, *tier.gates)
    offer = _offers_choice(plan, index, ledger)
    failed: Failed | None = None
    wanted = _samples_wanted(gates)
    for reask in range(tier.gate_reasks + 1):
        request = _request(plan, call, messages, offer, reask)
        if wanted > 1 and not offer and _in_one_request(gates, tier):
            request = replace(request, choices=_own_samples(gates))
        elif wanted > 1 and _caches(tier):  # the samples repeat it: read it from the cache
            first: Any = tier.deployments[0]
            marked = first.cache_marked(request.messages)
            request = replace(request, messages=marked)
        result, deployment = yield from walk_tier(plan, tier, request, ledger)
        result = _as_value(plan, result, offer, ledger)
        if not isinstance(result, Answered) or not gates:
            return result, deployment.name
        answer_at = len(ledger.attempts) - 1  # gates' samples and follow-ups come after it
        samples: tuple[Any, ...] = ()
        asked = 0
        if wanted > 1:
            votes = yield from _votes(
                plan, call, tier.name, deployment, request, result, gates, ledger
            )
            samples = tuple(value for value, _ in votes if value is not None)
            asked = len(votes)
            result = _majority(gates, samples, result)
            ledger.restamp(answer_at, votes=tuple(vote for _, vote in votes))
        follow_up = yield from _follow_up(tier.name, gates, deployment, messages, result, ledger)
        context = _context(plan, call, index, deployment, messages, result, samples, follow_up)
        context = replace(context, asked=asked)
        verdict: Verdict = yield Check(gates, result.value, context)
        if verdict.rejection is None:
            ledger.restamp(answer_at, scores=verdict.scores)
            return result, deployment.name
        failed = _rejected(verdict, result, answer_at, ledger)
        ledger.best = (result.value, tier.name)
        if reask < tier.gate_reasks:
            messages = with_failure(messages, failed)
    assert failed is not None
    return failed, deployment.name


def _rejected(verdict: Verdict, result: Answered, answer_at: int, ledger: Ledger) -> Failed:
    assert verdict.rejection is not None
    reason = f"{verdict.rejected_by}: {verdict.rejection.reason}"
    ledger.restamp(
        answer_at,
        outcome="rejected",
        trigger="gate",
        gate=verdict.rejected_by,
        reason=reason,
        scores=verdict.scores,
    )
    return Failed(
        "quality", "gate", reason, verdict.rejection, result.attempts, gate=verdict.rejected_by
    )


def _context(
    plan: Plan,
    call: CallInfo,
    index: int,
    deployment: Backend,
    messages: Messages,
    result: Answered,
    samples: tuple[Any, ...],
    follow_up: Any,
) -> GateContext:
    attempt = result.attempts[-1] if result.attempts else None
    return GateContext(
        messages=messages,
        tier=plan.tiers[index].name,
        deployment=deployment.name,
        provider=deployment.provider_name,
        model=deployment.model,
        completion=result.completion,
        attempt=attempt,
        args=tuple(call.args),
        kwargs=dict(call.kwargs),
        is_last_tier=index == len(plan.tiers) - 1,
        samples=samples,
        follow_up=follow_up,
    )


def _offers_choice(plan: Plan, index: int, ledger: Ledger) -> bool:
    """Cheaper tiers may ask to escalate, until the loop guard's count is reached; the
    strongest tier never may."""
    option = plan.self_escalation
    return (
        option is not None
        and index < len(plan.tiers) - 1
        and ledger.self_escalations < option.max_per_call
    )


def _request(plan: Plan, call: CallInfo, messages: Messages, offer: bool, reask: int) -> Request:
    context = call.context if call.context is not None else plan.context
    purpose: Purpose = "reask" if reask else "answer"
    shape = plan.answer
    if not offer:
        return Request(messages, shape.request_model, shape.wrapped, purpose, reask, context)
    assert plan.self_escalation is not None
    policy = {"role": "system", "content": plan.self_escalation.policy}
    model = choice_model(shape.declared, shape.name)
    return Request([policy, *messages], model, True, purpose, reask, context)


def _as_value(plan: Plan, result: TierCall, offer: bool, ledger: Ledger) -> TierCall:
    """The caller's value of an answer; a self-escalation becomes a quality failure."""
    if not isinstance(result, Answered):
        return result
    if not offer:
        value = plan.answer.value_of(result.value)
        return Answered(value, result.attempts, result.completion, result.choices)
    asked = result.value.escalate
    if asked is None:
        return Answered(result.value.answer, result.attempts, result.completion)
    ledger.self_escalations += 1
    reason = f"the model asked to escalate: {asked.reason}"
    ledger.restamp_last(outcome="rejected", trigger="self_escalation", reason=reason)
    return Failed("quality", "self_escalation", reason, SelfEscalated(asked), result.attempts)


def _samples_wanted(gates: tuple[Any, ...]) -> int:
    return max((gate.samples for gate in gates if isinstance(gate, SamplingGate)), default=1)


Vote = tuple[Any, "str | None"]
"""(the sample's value, its key): both ``None`` for a failed sample (a provider error, a
choice that did not validate); a key of ``None`` beside a value: one the key cannot read."""


def _in_one_request(gates: tuple[Any, ...], tier: Any) -> bool:
    """Whether the tier's answering request asks for every sample as a choice (``n``):
    when the sampling gate says so, or leaves it open and the tier's first deployment takes
    ``n``. A fallback that cannot is asked once and sampled with separate requests."""
    chooser = next((gate for gate in gates if isinstance(gate, SamplingGate)), None)
    setting = getattr(chooser, "one_request", None)
    if setting is False:
        return False
    first = tier.deployments[0]
    return isinstance(first, ChoicesBackend) and first.supports_n


def _caches(tier: Any) -> bool:
    """Whether every deployment of the tier caches a marked prompt (one provider's marks
    are never sent to another's fallback)."""
    return all(isinstance(d, CachingBackend) and d.prompt_caching for d in tier.deployments)


def _own_samples(gates: tuple[Any, ...]) -> int:
    """The samples the function's own prompt gives (the rest come from prompt variants)."""
    chooser = next((gate for gate in gates if isinstance(gate, SamplingGate)), None)
    variants = getattr(chooser, "variants", ()) or ()
    return _samples_wanted(gates) - int(sum(variant.samples for variant in variants))


def _key_of(gates: tuple[Any, ...]) -> Any:
    chooser = next((gate for gate in gates if isinstance(gate, SamplingGate)), None)
    key = getattr(chooser, "key", None)
    return key if callable(key) else (lambda value: repr(value))


def _vote_of(key: Any, value: Any) -> str | None:
    try:
        return str(key(value))
    except Exception:  # a sample the key cannot read (a missing field) casts no vote
        return None


def _votes(
    plan: Plan,
    call: CallInfo,
    tier: str,
    deployment: Backend,
    request: Request,
    answered: Answered,
    gates: tuple[Any, ...],
    ledger: Ledger,
) -> Generator[Step, Any, list[Vote]]:
    """Every sample of this check, the answer's own first, with its key (``None`` for a
    failed one): the choices of the one request, or further requests made here; then the
    samples of each prompt variant (a consistency gate's ``variants``)."""
    key = _key_of(gates)
    chooser = next((gate for gate in gates if isinstance(gate, SamplingGate)), None)
    variants = tuple(getattr(chooser, "variants", ()) or ())
    own = _samples_wanted(gates) - sum(variant.samples for variant in variants)
    decided: Any = getattr(chooser, "decided", None)
    stops = callable(decided) and bool(getattr(chooser, "stop_early", False))
    votes: list[Vote] = []
    if answered.choices:  # the answering request asked for its samples as choices
        votes.extend(_choice_votes(plan, request, answered, key))
    else:
        votes.append((answered.value, _vote_of(key, answered.value)))
    sources = [(None, request, own - len(votes))]
    for variant in variants:
        messages = _variant_messages(variant, call, plan.function)
        sources.append((variant.name, replace(request, messages=messages), variant.samples))
    one = (
        getattr(chooser, "one_request", None) is not False
        and isinstance(deployment, ChoicesBackend)
        and deployment.supports_n
    )
    for name, asked, count in sources:
        while count > 0:
            if stops and decided([vote for _, vote in votes]):
                return votes
            batch = 1 if stops else count
            count -= batch
            if one and batch > 1:
                drawn = yield from _choices(plan, tier, deployment, asked, batch, name, ledger)
            else:
                drawn = yield from _sample(plan, tier, deployment, asked, batch, ledger, name)
            votes.extend(
                (value, None if value is None else _vote_of(key, value)) for value in drawn
            )
    return votes


def _choice_votes(plan: Plan, request: Request, answered: Answered, key: Any) -> list[Vote]:
    votes: list[Vote] = []
    for choice in answered.choices:
        if isinstance(choice, Answered):
            value = _sample_value(plan, request, choice.value)
            votes.append((value, _vote_of(key, value)))
        else:
            votes.append((None, None))
    return votes


def _variant_messages(variant: Any, call: CallInfo, function: str) -> Messages:
    from escalate._call import to_messages  # the call path's one conversion of a prompt

    return to_messages(variant.prompt(*call.args, **call.kwargs), f"{function} ({variant.name})")


def _choices(
    plan: Plan,
    tier: str,
    deployment: Backend,
    request: Request,
    count: int,
    variant: str | None,
    ledger: Ledger,
) -> Generator[Step, Any, list[Any]]:
    """``count`` samples as the choices of one request (one attempt, ``purpose="sample"``)."""
    step = Call(deployment, request.messages, request.response_model, None, request.context, count)
    ledger.sending(tier, deployment)
    result: TierCall = yield step
    ledger.record(_with_variant(result, variant), "sample")
    if isinstance(result, Answered) and result.choices:
        return [value for value, _ in _choice_votes(plan, request, result, lambda v: v)]
    if isinstance(result, Answered):
        return [_sample_value(plan, request, result.value)]
    return [None] * count


def _with_variant(result: TierCall, variant: str | None) -> TierCall:
    if variant is None:
        return result
    attempts = tuple(a.model_copy(update={"variant": variant}) for a in result.attempts)
    return replace(result, attempts=attempts)


def _sample(
    plan: Plan,
    tier: str,
    deployment: Backend,
    request: Request,
    count: int,
    ledger: Ledger,
    variant: str | None = None,
) -> Generator[Step, Any, list[Any]]:
    """``count`` more answers from the same deployment, for a consistency gate; each is an
    attempt on the receipt (its cost counted); a failed sample is ``None``."""
    call = Call(deployment, request.messages, request.response_model, None, request.context)
    ledger.sending(tier, deployment, count)
    results: list[TierCall] = yield Sample(call, count)
    answers: list[Any] = []
    for result in results:
        ledger.record(_with_variant(result, variant), "sample")
        value = None
        if isinstance(result, Answered):
            value = _sample_value(plan, request, result.value)
        answers.append(value)
    return answers


def _sample_value(plan: Plan, request: Request, parsed: Any) -> Any:
    if request.response_model is not plan.answer.request_model:
        return parsed.answer  # a self-escalation choice; one that asks to escalate: no vote
    return plan.answer.value_of(parsed)


def _follow_up(
    tier: str,
    gates: tuple[Any, ...],
    deployment: Backend,
    messages: Messages,
    answered: Answered,
    ledger: Ledger,
) -> Generator[Step, Any, Any]:
    """The tier's reply to the first gate's follow-up request (None if none or failed)."""
    asker = next((gate for gate in gates if isinstance(gate, FollowUpGate)), None)
    if asker is None:
        return None
    follow_messages, model = asker.follow_up(answered.value, messages)
    ledger.sending(tier, deployment)
    reply: TierCall = yield Call(deployment, follow_messages, model)
    ledger.record(reply, "follow_up")
    return reply.value if isinstance(reply, Answered) else None


def _majority(gates: tuple[Any, ...], samples: tuple[Any, ...], first: Answered) -> Answered:
    """The answer a gate with ``choose`` picks among the samples (the majority)."""
    chooser = next((gate for gate in gates if isinstance(gate, SamplingGate)), None)
    if chooser is None:
        return first
    return Answered(chooser.choose(samples), first.attempts, first.completion)


def with_failure(messages: Messages, failed: Failed) -> Messages:
    """The conversation with the rejected answer and why it was rejected appended."""
    raw = next((a.raw_output for a in reversed(failed.attempts) if a.raw_output), None)
    feedback = f"A previous answer to this was rejected ({failed.trigger}): {failed.reason}"
    extra: Messages = []
    if raw is not None:
        extra.append({"role": "assistant", "content": raw})
    extra.append({"role": "user", "content": feedback + "\nAnswer again, correctly."})
    return [*messages, *extra]
