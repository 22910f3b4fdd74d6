"""``@escalating``: check the configuration once, then wrap the prompt function.

The decorator knows nothing of providers: it turns the prompt function's return value
into messages, hands them to a face (sync or async, following the prompt function), and
attaches the receipt to the result.
"""

from __future__ import annotations

import dataclasses
import inspect
import weakref
from collections.abc import Callable, Coroutine, Sequence
from decimal import Decimal
from typing import Any, Literal, ParamSpec, Protocol, TypeVar, overload

import wrapt
from pydantic import BaseModel, ValidationError

from escalate._engine import CallInfo, Messages, Plan, Retry, Trigger
from escalate._faces import run_async, run_sync
from escalate._option import EscalationOption
from escalate._receipt import Receipt, attach
from escalate._routing import as_budget, resolve
from escalate._switches import ALL_FUNCTIONS, tier_overrides
from escalate._tiers import Backend, Tier, build_tiers
from escalate.events import Hook, listener
from escalate.exceptions import ConfigurationError
from escalate.gates import Gate, gate_name, is_async_gate

__all__ = ["escalating"]

P = ParamSpec("P")
M = TypeVar("M")
M_co = TypeVar("M_co", covariant=True)

Message = dict[str, Any]
Prompt = str | Sequence[Message]
"""What a prompt function returns: one user message, or a list of chat messages."""

OnSpec = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]


class Decorator(Protocol[M_co]):
    """What ``escalating(...)`` returns: apply it to a sync or async prompt function."""

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, Prompt]]
    ) -> Callable[P, Coroutine[Any, Any, M_co]]: ...

    @overload
    def __call__(self, fn: Callable[P, Prompt]) -> Callable[P, M_co]: ...


def escalating(
    *,
    tiers: Sequence[str | Tier | Backend],
    response_model: type[M],
    on: OnSpec = ValidationError,
    retry: Retry | None = None,
    on_provider_exhausted: Literal["escalate", "raise"] = "escalate",
    carry_failure: bool = False,
    gates: Sequence[Gate] = (),
    when_unmet: Literal["raise", "best"] = "raise",
    budget_usd: Decimal | float | str | None = None,
    route: Callable[..., Any] | None = None,
    offer_escalation: bool | EscalationOption = False,
    hooks: Sequence[Hook] = (),
) -> Decorator[M]:
    """Run the decorated prompt on the cheapest tier first and escalate on failure.

    The decorated function returns the prompt (a string, or a list of chat messages); the
    result of calling it is a ``response_model`` instance from the cheapest tier whose
    answer held. :func:`~escalate.receipt_of` on that result tells the whole story.

    - ``tiers``: cheapest first; ``"provider/model"`` strings or :class:`~escalate.Tier`.
    - ``response_model``: a pydantic model, or ``str`` for a plain-text answer (returned
      as a ``str`` subclass that carries its receipt); a validation failure (after the
      tier's re-asks) always moves the task up.
    - ``on``: more exceptions that count as a quality failure and move the task up: an
      exception type, a tuple of them, or a predicate. Anything unmatched passes through
      unchanged.
    - ``retry``: how provider failures (429, 5xx, 529, timeouts, dropped connections) are
      retried before moving sideways to a tier's ``fallbacks``.
    - ``on_provider_exhausted``: when every deployment of a tier fails at the provider,
      ``"escalate"`` (move up) or ``"raise"`` (:class:`~escalate.ProviderExhausted`).
    - ``carry_failure``: give the next tier the rejected answer and why it was rejected
      (default: the next tier sees the original prompt only).
    - ``gates``: checks of a well-formed answer, run on every tier (see
      :mod:`escalate.gates`); a rejection moves the task up.
    - ``when_unmet``: when no answer passes (the strongest tier's included) or the budget
      stops the walk: ``"raise"`` (:class:`~escalate.AllTiersFailed`,
      :class:`~escalate.BudgetExceeded`) or ``"best"`` (return the best answer so far; the
      receipt's outcome says ``best_effort``).
    - ``budget_usd``: the cost budget of one call: the walk stops before an escalation
      whose projected cost would pass it.
    - ``route``: called with the call's arguments; returns the tier to start at (a name or
      index, optionally as ``(tier, reason)``), or None for the cheapest.
    - ``offer_escalation``: let the cheaper tiers answer *or* ask to escalate, with a
      reason and a restated question (``True`` for the default policy, or an
      :class:`~escalate.EscalationOption`). The next tier sees the user's conversation
      only; the strongest tier is never offered the choice.
    - ``hooks``: called with every event of every call (see :mod:`escalate.events`); a
      hook that raises is logged and never breaks the call.

    Configuration mistakes raise :class:`~escalate.ConfigurationError` here, not at call time.
    """
    gate_list = _check_gates(gates, "gates")
    built = build_tiers(tiers, gate_list)
    _check_response_model(response_model)
    is_text = response_model is str
    model: type[Any] = TextAnswer if is_text else response_model
    option = _as_option(offer_escalation)
    hook_list = _check_hooks(hooks)
    for tier in built:
        _check_gates_fit((*gate_list, *tier.gates), model, tier.name)
    trigger = _as_trigger(on)
    budget = as_budget(budget_usd)
    if when_unmet not in ("raise", "best"):
        raise ConfigurationError(f"when_unmet must be 'raise' or 'best', got {when_unmet!r}")
    if route is not None and not callable(route):
        raise ConfigurationError(f"route must be a function of the call's arguments, got {route!r}")
    if retry is not None and not isinstance(retry, Retry):
        raise ConfigurationError(f"retry must be a Retry(...), got {type(retry).__name__}")
    if on_provider_exhausted not in ("escalate", "raise"):
        raise ConfigurationError(
            f"on_provider_exhausted must be 'escalate' or 'raise', got {on_provider_exhausted!r}"
        )

    def decorate(fn: Callable[..., Any]) -> Any:
        if not callable(fn):
            raise ConfigurationError(f"@escalating decorates a function, got {type(fn).__name__}")
        is_async = inspect.iscoroutinefunction(fn)
        for tier in built:
            for deployment in tier.deployments:
                deployment.check_flavour(is_async)
            if not is_async:
                _refuse_async_gates((*gate_list, *tier.gates), fn)
        plan = Plan(
            function=getattr(fn, "__qualname__", repr(fn)),
            tiers=built,
            response_model=model,
            on=trigger,
            retry=retry or Retry(),
            on_provider_exhausted=on_provider_exhausted,
            carry_failure=carry_failure,
            gates=gate_list,
            when_unmet=when_unmet,
            budget_usd=budget,
            route=route,
            option=option,
        )
        _plans[fn] = plan
        face = _Face(plan, fn, is_text, hook_list)
        return _async_wrapper(face)(fn) if is_async else _sync_wrapper(face)(fn)

    return decorate


_plans: weakref.WeakKeyDictionary[Callable[..., Any], Plan] = weakref.WeakKeyDictionary()


def plan_of(function: Callable[..., Any]) -> Plan:
    """The plan of an @escalating function (for escalate.testing); TypeError otherwise."""
    original = getattr(function, "__wrapped__", function)
    try:
        return _plans[original]
    except (KeyError, TypeError):
        raise TypeError(f"{function!r} is not an @escalating function") from None


def _current(plan: Plan, key: Callable[..., Any]) -> Plan:
    """The plan with any tier override from escalate.testing in force."""
    overrides = tier_overrides.get()
    if not overrides:
        return plan
    tiers = overrides.get(key, overrides.get(ALL_FUNCTIONS))
    return plan if tiers is None else dataclasses.replace(plan, tiers=tiers)


@dataclasses.dataclass(frozen=True)
class _Face:
    """What a wrapper needs at call time."""

    plan: Plan
    key: Callable[..., Any]
    is_text: bool
    hooks: tuple[Hook, ...]

    def start(self, prompt: object, args: Any, kwargs: Any) -> tuple[Plan, Messages, CallInfo]:
        messages = to_messages(prompt, self.plan.function)
        plan = _current(self.plan, self.key)
        call = resolve(plan, args, kwargs, listener(self.hooks))
        return plan, messages, call

    def finish(self, plan: Plan, value: Any, receipt: Receipt) -> Any:
        if self.is_text:
            value = Text(value.text)
        elif type(value) is not plan.response_model and isinstance(value, plan.response_model):
            # instructor answers with a subclass of its own making; users compare, dump and
            # pickle their own class, so rebuild it (already validated: no second validation).
            value = plan.response_model.model_construct(
                _fields_set=value.model_fields_set,
                **{name: getattr(value, name) for name in type(value).model_fields},
            )
        attach(value, receipt)
        return value


def _sync_wrapper(face: _Face) -> Any:
    @wrapt.decorator
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        plan, messages, call = face.start(wrapped(*args, **kwargs), args, kwargs)
        return face.finish(plan, *run_sync(plan, messages, call))

    return wrapper


def _async_wrapper(face: _Face) -> Any:
    @wrapt.decorator
    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        plan, messages, call = face.start(await wrapped(*args, **kwargs), args, kwargs)
        return face.finish(plan, *await run_async(plan, messages, call))

    return wrapper


class TextAnswer(BaseModel):
    """A plain-text answer."""

    text: str


class Text(str):
    """A plain-text answer: a ``str`` in every way, which ``receipt_of`` knows."""

    __slots__ = ("__weakref__",)


_ROLES = frozenset({"system", "user", "assistant"})


def to_messages(prompt: object, function: str) -> Messages:
    """The prompt function's return value as chat messages, or a clear TypeError."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, Sequence) and prompt and all(_is_message(m) for m in prompt):
        return [dict(m) for m in prompt]
    raise TypeError(
        f"the prompt function {function} returned {type(prompt).__name__}: return a str "
        "(one user message) or a non-empty list of {'role': 'system'|'user'|'assistant', "
        "'content': ...} messages"
    )


def _is_message(item: object) -> bool:
    return isinstance(item, dict) and item.get("role") in _ROLES and "content" in item


def _check_gates(gates: object, where: str) -> tuple[Gate, ...]:
    if isinstance(gates, (str, bytes)) or not isinstance(gates, Sequence):
        raise ConfigurationError(f"{where} must be a list of gates, got {gates!r}")
    for index, gate in enumerate(gates):
        if not callable(gate):
            raise ConfigurationError(
                f"{where}[{index}] is not callable ({gate!r}): a gate is a function of "
                "(answer, context) that raises escalate.gates.Rejected to reject"
            )
    return tuple(gates)


def _check_gates_fit(gates: Sequence[Any], model: type[Any], tier: str) -> None:
    """Gates whose scores would overwrite each other, or that read fields the response
    model lacks, are refused now rather than on the first answer."""
    names = [gate_name(gate) for gate in gates]
    if duplicates := sorted({name for name in names if names.count(name) > 1}):
        raise ConfigurationError(
            f"tier {tier!r} has two gates named {duplicates[0]!r}: their scores would "
            "overwrite each other on the receipt; give one of them name='...'"
        )
    for gate in gates:
        check = getattr(gate, "check_response_model", None)
        if check is not None:
            check(model)


def _refuse_async_gates(gates: Sequence[Any], fn: Callable[..., Any]) -> None:
    for gate in gates:
        if is_async_gate(gate):
            raise ConfigurationError(
                f"gate {gate_name(gate)} is async but {fn.__qualname__} is sync: make the "
                "prompt function async, or the gate sync"
            )


def _as_option(offer: object) -> EscalationOption | None:
    if offer is True:
        return EscalationOption()
    if offer is False or offer is None:
        return None
    if isinstance(offer, EscalationOption):
        return offer
    raise ConfigurationError(
        f"offer_escalation must be True, False or an EscalationOption, got {offer!r}"
    )


def _check_hooks(hooks: object) -> tuple[Hook, ...]:
    if not isinstance(hooks, Sequence) or not all(callable(h) for h in hooks):
        raise ConfigurationError(
            f"hooks must be a list of callables taking an event, got {hooks!r}"
        )
    return tuple(hooks)


def _check_response_model(response_model: object) -> None:
    is_model = isinstance(response_model, type) and issubclass(response_model, BaseModel)
    if not (is_model or response_model is str):
        raise ConfigurationError(
            "response_model must be a pydantic BaseModel subclass (or str for plain text), "
            f"got {response_model!r}"
        )


def _as_trigger(on: object) -> Trigger:
    if isinstance(on, type) and issubclass(on, BaseException):
        types: tuple[type[BaseException], ...] = (on,)
    elif (
        isinstance(on, tuple)
        and on
        and all(isinstance(t, type) and issubclass(t, BaseException) for t in on)
    ):
        types = on
    elif callable(on) and not isinstance(on, type):
        predicate: Callable[[BaseException], bool] = on
        return predicate
    else:
        raise ConfigurationError(
            f"on must be an exception type, a non-empty tuple of them, or a predicate "
            f"taking the exception, got {on!r}"
        )
    return lambda error: isinstance(error, types)
