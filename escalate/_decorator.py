"""``@escalating``: check the configuration once, then wrap the prompt function.

The decorator knows nothing of providers and nothing of how a call is walked: it checks
every setting when it is applied, builds the :class:`~escalate._call.CallPath` and keeps
the prompt function's name, signature, docstring and async-ness (wrapt).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Coroutine, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal, ParamSpec, Protocol, TypeVar, overload

import wrapt
from pydantic import ValidationError

from escalate._adapting import Learner
from escalate._adaptive import AdaptiveStart, as_adaptive
from escalate._answers import shape_of
from escalate._audit import Audit, check_audit
from escalate._call import CallPath, register
from escalate._checks import (
    as_self_escalation,
    as_trigger,
    check_gates,
    check_gates_fit,
    check_hooks,
)
from escalate._config import Tier, build_tiers
from escalate._plan import Backend, Plan
from escalate._retry import Retry
from escalate._routing import as_budget, check_tags
from escalate._self_escalation import SelfEscalation
from escalate.events import Hook
from escalate.exceptions import ConfigurationError, SamplingCostWarning
from escalate.gates import Gate, gate_name, is_async_gate
from escalate.gates._protocol import SamplingGate

__all__ = ["Prompt", "escalating"]

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


@overload
def escalating(
    _bare: None = None,
    /,
    *,
    tiers: Sequence[str | Tier | Backend],
    response_model: type[M],
    on: OnSpec = ...,
    retry: Retry | None = ...,
    on_provider_exhausted: Literal["escalate", "raise"] = ...,
    carry_failure: bool = ...,
    gates: Sequence[Gate] = ...,
    when_unmet: Literal["raise", "best_effort"] = ...,
    budget_usd: Decimal | float | str | None = ...,
    route: Callable[..., Any] | None = ...,
    self_escalation: bool | SelfEscalation = ...,
    hooks: Sequence[Hook] = ...,
    task: str | Callable[..., str | None] | None = ...,
    tags: Mapping[str, str] | None = ...,
    context: Mapping[str, Any] | None = ...,
    adaptive: bool | AdaptiveStart = ...,
    audit: Audit | None = ...,
) -> Decorator[M]: ...


@overload
def escalating(
    _bare: None = None,
    /,
    *,
    tiers: Sequence[str | Tier | Backend],
    response_model: Any,
    on: OnSpec = ...,
    retry: Retry | None = ...,
    on_provider_exhausted: Literal["escalate", "raise"] = ...,
    carry_failure: bool = ...,
    gates: Sequence[Gate] = ...,
    when_unmet: Literal["raise", "best_effort"] = ...,
    budget_usd: Decimal | float | str | None = ...,
    route: Callable[..., Any] | None = ...,
    self_escalation: bool | SelfEscalation = ...,
    hooks: Sequence[Hook] = ...,
    task: str | Callable[..., str | None] | None = ...,
    tags: Mapping[str, str] | None = ...,
    context: Mapping[str, Any] | None = ...,
    adaptive: bool | AdaptiveStart = ...,
    audit: Audit | None = ...,
) -> Decorator[Any]: ...


def escalating(
    _bare: object = None,
    /,
    *,
    tiers: Sequence[str | Tier | Backend] | None = None,
    response_model: Any = None,
    on: OnSpec = ValidationError,
    retry: Retry | None = None,
    on_provider_exhausted: Literal["escalate", "raise"] = "escalate",
    carry_failure: bool = False,
    gates: Sequence[Gate] = (),
    when_unmet: Literal["raise", "best_effort"] = "raise",
    budget_usd: Decimal | float | str | None = None,
    route: Callable[..., Any] | None = None,
    self_escalation: bool | SelfEscalation = False,
    hooks: Sequence[Hook] = (),
    task: str | Callable[..., str | None] | None = None,
    tags: Mapping[str, str] | None = None,
    context: Mapping[str, Any] | None = None,
    adaptive: bool | AdaptiveStart = False,
    audit: Audit | None = None,
) -> Decorator[Any]:
    """Run the decorated prompt on the cheapest tier first and escalate on failure.

    The decorated function returns the prompt (a string, or a list of chat messages); the
    result of calling it is the answer from the cheapest tier whose answer held, carrying
    its receipt as ``result._receipt`` (:func:`~escalate.receipt_of` reads it; for values
    that cannot carry it, such as ``int`` or lists, use :func:`~escalate.with_receipt`).

    - ``tiers``: cheapest first; ``"provider/model"`` strings or :class:`~escalate.Tier`.
    - ``response_model``: any type pydantic validates: a ``BaseModel``, ``str``, ``int``,
      ``bool``, a ``Literal``, ``list[Model]``, a union, an ``Annotated`` type with
      validators. A validation failure (after the tier's re-asks) moves the task up.
    - ``on``: more exceptions that count as a quality failure and move the task up: an
      exception type, a tuple of them, or a predicate. Anything unmatched passes through
      unchanged (and ``receipt_of(error)`` still finds its receipt).
    - ``retry``: how provider failures (429, 5xx, 529, timeouts, dropped connections) are
      retried before moving sideways to a tier's ``fallbacks``.
    - ``on_provider_exhausted``: when every deployment of a tier fails at the provider,
      ``"escalate"`` (move up) or ``"raise"`` (:class:`~escalate.ProviderExhausted`).
    - ``carry_failure``: give the next tier the rejected answer and why it was rejected.
    - ``gates``: checks of a well-formed answer, run on every tier (:mod:`escalate.gates`).
    - ``when_unmet``: when no answer passes or the budget stops the walk: ``"raise"``
      (:class:`~escalate.AllTiersFailed`, :class:`~escalate.BudgetExceeded`) or
      ``"best_effort"`` (return the best answer so far; the receipt says ``best_effort``).
    - ``budget_usd``: the cost budget of one call.
    - ``route``: called with the call's arguments; returns the tier to start at (a name or
      index, optionally as ``(tier, reason)``), or None for the cheapest (with ``adaptive``,
      None leaves the start to the adaptive start).
    - ``self_escalation``: let the cheaper tiers answer *or* ask to escalate, with a reason
      and a restated question (``True`` or a :class:`~escalate.SelfEscalation`).
    - ``hooks``: called with every event of every call (:mod:`escalate.events`).
    - ``task``: the task class receipts file calls under: a str, or a function of the
      call's arguments; ``tags``: str key/values on every receipt.
    - ``context``: instructor's validation context (``options(context=...)`` per call).
    - ``adaptive``: start each call where its task class is likely to end, learned from
      the function's receipts (``True`` or an :class:`~escalate.AdaptiveStart`; see
      ``docs/adaptive.md``). ``options(start_at=...)`` and ``route=`` still win.
    - ``audit``: send a share of the answers that passed on a cheaper tier to a stronger
      one and compare them on a key (:class:`~escalate.Audit`): the receipt's ``audit``
      says whether they agreed; the store measures each gate's and tier's false passes.

    Configuration mistakes raise :class:`~escalate.ConfigurationError` here, not at call time.
    """
    if _bare is not None:
        raise ConfigurationError(
            "@escalating takes keyword arguments: write "
            "@escalating(tiers=[...], response_model=...) above the function"
        )
    if tiers is None or response_model is None:
        missing = [
            n for n, v in (("tiers", tiers), ("response_model", response_model)) if v is None
        ]
        raise ConfigurationError(f"@escalating needs {' and '.join(missing)}=...")
    plan = _plan(locals())
    hook_list = check_hooks(hooks)
    adaptive_start = as_adaptive(adaptive)

    def decorate(fn: Callable[..., Any]) -> Any:
        if not callable(fn):
            raise ConfigurationError(f"@escalating decorates a function, got {type(fn).__name__}")
        is_async = inspect.iscoroutinefunction(fn)
        _check_faces(plan, fn, is_async)
        module = getattr(fn, "__module__", None)
        qualname = getattr(fn, "__qualname__", repr(fn))
        function = f"{module}.{qualname}" if module else qualname
        learner = None if adaptive_start is None else Learner(adaptive_start, function)
        named = Plan(**{**plan.__dict__, "function": function, "adaptive": learner})
        path = CallPath(named, fn, hook_list)
        register(path)
        return _async_wrapper(path)(fn) if is_async else _sync_wrapper(path)(fn)

    return decorate


def _warn_sampling_the_strongest(gates: Sequence[Any], built: Sequence[Any]) -> None:
    """A consistency gate among the function's gates samples every tier, the strongest
    included, ``n`` times: say so once, when the decorator is applied, with the per-tier
    way (a tier's own gates) that samples only the cheap tiers."""
    sampling = [gate for gate in gates if isinstance(gate, SamplingGate) and gate.samples > 1]
    if not sampling or len(built) < 2:
        return
    gate = sampling[0]
    warnings.warn(
        f"gate {gate_name(gate)} is among the function's gates, so every tier is sampled "
        f"{gate.samples} times, the strongest ({built[-1].name!r}) included: to sample only "
        f"the cheaper tiers, give it to them, Tier(..., gates=[{gate_name(gate)}(...)])",
        SamplingCostWarning,
        stacklevel=4,
    )


def _plan(settings: Mapping[str, Any]) -> Plan:
    """Every setting checked, as a plan still waiting for its function's name."""
    gate_list = check_gates(settings["gates"], "gates")
    built = build_tiers(settings["tiers"], gate_list)
    _warn_sampling_the_strongest(gate_list, built)
    shape = shape_of(settings["response_model"])
    for tier in built:
        check_gates_fit((*gate_list, *tier.gates), shape.declared, tier.name)
    when_unmet = settings["when_unmet"]
    if when_unmet not in ("raise", "best_effort"):
        raise ConfigurationError(f"when_unmet must be 'raise' or 'best_effort', got {when_unmet!r}")
    route, retry, exhausted = (
        settings["route"],
        settings["retry"],
        settings["on_provider_exhausted"],
    )
    if route is not None and not callable(route):
        raise ConfigurationError(f"route must be a function of the call's arguments, got {route!r}")
    if retry is not None and not isinstance(retry, Retry):
        raise ConfigurationError(f"retry must be a Retry(...), got {type(retry).__name__}")
    if exhausted not in ("escalate", "raise"):
        raise ConfigurationError(
            f"on_provider_exhausted must be 'escalate' or 'raise', got {exhausted!r}"
        )
    return Plan(
        function="",
        tiers=built,
        answer=shape,
        on=as_trigger(settings["on"]),
        retry=retry or Retry(),
        on_provider_exhausted=exhausted,
        carry_failure=bool(settings["carry_failure"]),
        gates=gate_list,
        when_unmet=when_unmet,
        budget_usd=as_budget(settings["budget_usd"]),
        route=route,
        self_escalation=as_self_escalation(settings["self_escalation"]),
        task=_check_task(settings["task"]),
        tags=check_tags(settings["tags"] or {}, "escalating"),
        context=_check_context(settings["context"]),
        audit=check_audit(settings["audit"], built, shape),
    )


def _check_task(task: object) -> str | Callable[..., str | None] | None:
    if task is None or isinstance(task, str) or callable(task):
        return task
    raise ConfigurationError(
        f"task must be a str or a function of the call's arguments, got {task!r}"
    )


def _check_context(context: object) -> Mapping[str, Any] | None:
    if context is None or isinstance(context, Mapping):
        return context
    raise ConfigurationError(f"context must be a mapping, got {type(context).__name__}")


def _check_faces(plan: Plan, fn: Callable[..., Any], is_async: bool) -> None:
    for tier in plan.tiers:
        for deployment in tier.deployments:
            deployment.check_flavour(is_async)
        if is_async:
            continue
        for gate in (*plan.gates, *tier.gates):
            if is_async_gate(gate):
                raise ConfigurationError(
                    f"gate {gate_name(gate)} is async but {fn.__qualname__} is sync: make the "
                    "prompt function async, or the gate sync"
                )


def _sync_wrapper(path: CallPath) -> Any:
    @wrapt.decorator
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        return path.call_sync(args, kwargs, via=wrapped)

    return wrapper


def _async_wrapper(path: CallPath) -> Any:
    @wrapt.decorator
    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        return await path.call_async(args, kwargs, via=wrapped)

    return wrapper
