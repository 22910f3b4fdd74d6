"""What the engine is given and what it asks for: the plan, the call, the steps.

The plan is checked once, when the decorator is applied; the call adds its arguments and
where it starts; the steps are the only requests the engine makes of a face. The engine's
view of a tier, a deployment and a gate is a Protocol here, so nothing is probed.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from escalate._answers import AnswerShape
from escalate._outcomes import TierCall
from escalate._receipt import Route
from escalate._retry import Retry
from escalate._self_escalation import SelfEscalation

if TYPE_CHECKING:
    from escalate._adapting import Learner
    from escalate._audit import AuditPlan
    from escalate._breaker import Breaker
    from escalate._tracing import CallTrace
    from escalate.gates import GateContext, Rejected

__all__ = [
    "Backend",
    "CachingBackend",
    "Call",
    "CallInfo",
    "Check",
    "ChoicesBackend",
    "EngineTier",
    "Messages",
    "Plan",
    "Sample",
    "Sleep",
    "Step",
    "Trigger",
    "Verdict",
]

Messages = list[dict[str, Any]]
Trigger = Callable[[BaseException], bool]


@runtime_checkable
class Backend(Protocol):
    """One place a tier's request can go: escalate's own deployment of a provider model,
    or a fake tier from :mod:`escalate.testing`. It returns
    :class:`~escalate._outcomes.Answered` or ``Failed`` and never raises for an answer it
    could not give."""

    @property
    def name(self) -> str: ...

    @property
    def provider_name(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def streams(self) -> bool: ...

    @property
    def breaker_key(self) -> Hashable:
        """The deployment's identity for its circuit breaker (provider, model, base URL):
        deployments with equal keys share one breaker, across every function."""
        ...

    def check_flavour(self, is_async: bool) -> None: ...

    def estimate_cost(self, input_tokens: int, output_tokens: int) -> Decimal | None: ...

    def call_sync(
        self,
        messages: Messages,
        response_model: type[Any],
        *,
        on_partial: Callable[[Any], None] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> TierCall: ...

    async def call_async(
        self,
        messages: Messages,
        response_model: type[Any],
        *,
        on_partial: Callable[[Any], None] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> TierCall: ...


@runtime_checkable
class ChoicesBackend(Backend, Protocol):
    """A backend that can answer one request with several choices (OpenAI's ``n``): one
    attempt on the receipt, the prompt billed once. It returns an ``Answered`` (its value
    the first choice that validated, ``choices`` every choice's outcome in order) or a
    ``Failed`` (the request failed, or no choice validated)."""

    @property
    def supports_n(self) -> bool: ...

    def call_choices_sync(
        self,
        messages: Messages,
        response_model: type[Any],
        n: int,
        *,
        context: Mapping[str, Any] | None = None,
    ) -> TierCall: ...

    async def call_choices_async(
        self,
        messages: Messages,
        response_model: type[Any],
        n: int,
        *,
        context: Mapping[str, Any] | None = None,
    ) -> TierCall: ...


@runtime_checkable
class CachingBackend(Backend, Protocol):
    """A backend whose provider caches a marked prompt prefix (Anthropic): a request the
    engine will repeat (a consistency gate's separate samples) is sent marked, so every
    repeat after the first reads the prompt from the cache, priced as a cache read."""

    @property
    def prompt_caching(self) -> bool: ...

    def cache_marked(self, messages: Messages) -> Messages: ...


class EngineTier(Protocol):
    """A checked tier: its name, its deployments in order, and its own settings."""

    @property
    def name(self) -> str: ...

    @property
    def deployments(self) -> tuple[Backend, ...]: ...

    @property
    def gates(self) -> tuple[Any, ...]: ...

    @property
    def gate_reasks(self) -> int: ...

    @property
    def on_timeout(self) -> Literal["retry", "escalate"]: ...

    @property
    def breaker(self) -> Breaker | None:
        """When its deployments' circuit breakers open; None: this tier ignores them."""
        ...


@dataclass(frozen=True)
class Plan:
    """Everything the walk needs to know, checked once when the decorator is applied."""

    function: str
    tiers: tuple[EngineTier, ...]
    answer: AnswerShape
    on: Trigger
    retry: Retry = field(default_factory=Retry)
    on_provider_exhausted: Literal["escalate", "raise"] = "escalate"
    carry_failure: bool = False
    gates: tuple[Any, ...] = ()
    """Gates for every tier; a tier's own gates run after these."""
    when_unmet: Literal["raise", "best_effort"] = "raise"
    """When no answer passes (or the budget stops the walk): raise, or return the best
    answer so far with the receipt's outcome ``best_effort``."""
    budget_usd: Decimal | None = None
    route: Callable[..., Any] | None = None
    """Chooses the starting tier from the call's arguments (see ``_routing``)."""
    self_escalation: SelfEscalation | None = None
    """Let the cheaper tiers ask to escalate (see ``_self_escalation``)."""
    task: str | Callable[..., str | None] | None = None
    """The task class of every call, or a function of the call's arguments giving it."""
    tags: Mapping[str, str] = field(default_factory=dict)
    context: Mapping[str, Any] | None = None
    """instructor's validation context for every call."""
    adaptive: Learner | None = None
    """Where calls start when neither ``options(start_at=...)`` nor ``route=`` says: learned
    from the function's receipts per task class (``_adapting``); None: the cheapest."""
    audit: AuditPlan | None = None
    """Audit a share of the answers that passed with a stronger tier (see ``_audit``)."""


@dataclass(frozen=True)
class CallInfo:
    """What one call adds to the plan: its arguments, where it starts, how it is filed."""

    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    start: int = 0
    route: Route | None = None
    budget_usd: Decimal | None = None
    on_event: Callable[[Any], None] | None = None
    """Receives the call's events (see ``escalate.events``); None when nobody listens."""
    task: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    context: Mapping[str, Any] | None = None
    trace: CallTrace | None = None
    """The call's OpenTelemetry spans (``escalate._tracing``); None when nothing records."""
    on_audit: Callable[[Any], None] | None = None
    """Receives a background audit the walk decided on (an ``_auditing.Deferred``), once
    the call's receipt is finished; None: background audits are not run."""


@dataclass(frozen=True, slots=True)
class Call:
    """Send ``messages`` to ``deployment``; reply with the :data:`TierCall` it came to.
    ``on_partial``, when set, receives a streaming tier's partial answers. ``choices`` above
    1 asks a :class:`ChoicesBackend` for that many choices in the one request."""

    deployment: Backend
    messages: Messages
    response_model: type[Any]
    on_partial: Callable[[Any], None] | None = None
    context: Mapping[str, Any] | None = None
    choices: int = 1

    def perform_sync(self) -> TierCall:
        if self.choices > 1 and isinstance(self.deployment, ChoicesBackend):
            return self.deployment.call_choices_sync(
                self.messages, self.response_model, self.choices, context=self.context
            )
        return self.deployment.call_sync(
            self.messages, self.response_model, on_partial=self.on_partial, context=self.context
        )

    async def perform_async(self) -> TierCall:
        if self.choices > 1 and isinstance(self.deployment, ChoicesBackend):
            return await self.deployment.call_choices_async(
                self.messages, self.response_model, self.choices, context=self.context
            )
        return await self.deployment.call_async(
            self.messages, self.response_model, on_partial=self.on_partial, context=self.context
        )


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
