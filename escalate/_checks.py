"""Decoration-time checks of the decorator's settings: gates, hooks, triggers and
self-escalation, each refused with a message that names the mistake."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import escalate.events as events
from escalate._self_escalation import SelfEscalation
from escalate.events import Hook
from escalate.exceptions import ConfigurationError
from escalate.gates import Gate, gate_name
from escalate.gates._protocol import ModelAwareGate

__all__ = ["as_self_escalation", "as_trigger", "check_gates", "check_gates_fit", "check_hooks"]


def check_gates(gates: object, where: str) -> tuple[Gate, ...]:
    if isinstance(gates, (str, bytes)) or not isinstance(gates, Sequence):
        raise ConfigurationError(f"{where} must be a list of gates, got {gates!r}")
    for index, gate in enumerate(gates):
        if not callable(gate):
            raise ConfigurationError(
                f"{where}[{index}] is not callable ({gate!r}): a gate is a function of "
                "(answer, context) that raises escalate.gates.Rejected to reject"
            )
    return tuple(gates)


def check_gates_fit(gates: Sequence[Any], answer_type: Any, tier: str) -> None:
    """Gates whose scores would overwrite each other, or that read fields the response
    model lacks, are refused now rather than on the first answer."""
    names = [gate_name(gate) for gate in gates]
    if duplicates := sorted({name for name in names if names.count(name) > 1}):
        raise ConfigurationError(
            f"tier {tier!r} has two gates named {duplicates[0]!r}: their scores would "
            "overwrite each other on the receipt; give one of them name='...'"
        )
    for gate in gates:
        if isinstance(gate, ModelAwareGate):
            gate.check_response_model(answer_type)


def check_hooks(hooks: object) -> tuple[Hook, ...]:
    try:
        return events.check_hooks(hooks)
    except TypeError as error:
        raise ConfigurationError(str(error)) from None


def as_self_escalation(choice: object) -> SelfEscalation | None:
    if choice is True:
        return SelfEscalation()
    if choice is False or choice is None:
        return None
    if isinstance(choice, SelfEscalation):
        return choice
    raise ConfigurationError(
        f"self_escalation must be True, False or a SelfEscalation, got {choice!r}"
    )


def as_trigger(on: object) -> Callable[[BaseException], bool]:
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
