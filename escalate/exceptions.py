"""The exceptions escalate raises.

The tree::

    EscalateError                 every error escalate itself raises
    ├── ConfigurationError        a bad decorator or tier setting (also a ValueError);
    │                             raised when the decorator is applied, not at call time
    ├── ProviderCallBlocked       a real provider request while escalate.testing blocks them
    ├── BreakerOpen               a deployment was skipped: its circuit breaker is open
    │                             (never raised alone: the __cause__ of a failed call)
    └── EscalationFailed          the call produced no acceptable answer; carries .receipt
        ├── AllTiersFailed        every tier was tried and none gave an answer that held
        ├── ProviderExhausted     a tier's deployments all failed at the provider and the
        │                         policy is to raise rather than escalate
        └── BudgetExceeded        the next escalation would pass the call's cost budget

One warning, when the decorator is applied: :class:`SamplingCostWarning`, a consistency
gate among the function's gates that will sample the strongest tier too.

Exceptions that no trigger matches (a 401 from the provider, a bug in a prompt function)
are never wrapped: they reach the caller unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from escalate._receipt import Receipt

__all__ = [
    "AllTiersFailed",
    "BreakerOpen",
    "BudgetExceeded",
    "ConfigurationError",
    "EscalateError",
    "EscalationFailed",
    "ProviderCallBlocked",
    "ProviderExhausted",
    "SamplingCostWarning",
]


class EscalateError(Exception):
    """Base class of every error escalate raises itself."""


class ConfigurationError(EscalateError, ValueError):
    """A decorator or tier setting is wrong; the message names the setting and the fix."""


class ProviderCallBlocked(EscalateError):
    """A real provider request was made while :func:`escalate.testing.block_providers`
    was in force: a test reached the network it meant to fake or replay."""


class BreakerOpen(EscalateError):
    """A deployment's circuit breaker was open, so no request was made to it. It stands
    for the skipped attempt: the ``__cause__`` of an :class:`EscalationFailed` whose last
    deployment was skipped."""


class EscalationFailed(EscalateError):
    """No tier produced an answer that held.

    The whole story is in :attr:`receipt`: every attempt, its raw output, its tokens and
    cost, and why it failed. The last underlying error is the ``__cause__``.
    """

    def __init__(self, message: str, *, receipt: Receipt) -> None:
        super().__init__(message)
        self.receipt = receipt

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only init: teach pickle how to rebuild us (multiprocessing, task queues).
        return (_rebuild, (type(self), str(self), self.receipt))


class AllTiersFailed(EscalationFailed):
    """Every tier was tried; none gave an answer that passed its checks."""


class ProviderExhausted(EscalationFailed):
    """A tier's deployments all failed at the provider, and the policy says raise."""


class BudgetExceeded(EscalationFailed):
    """The walk stopped before an escalation that would pass the call's budget."""


def _rebuild(cls: type[EscalationFailed], message: str, receipt: Receipt) -> EscalationFailed:
    return cls(message, receipt=receipt)


class SamplingCostWarning(UserWarning):
    """A sampling gate (``consistency``) among the function's gates samples every tier,
    the strongest included, ``n`` times; giving it to the cheaper tiers
    (``Tier(..., gates=[consistency(...)])``) samples only those. Silence it with
    :func:`warnings.filterwarnings` when sampling the strongest tier is meant."""
