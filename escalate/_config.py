"""Configuration: what a user names as a tier, checked once, and built into deployments.

A tier is ``"provider/model"`` or a :class:`Tier`. :func:`build_tiers` checks every tier
when the decorator is applied (so a mistake fails at import, not on the first call), lets
the gates refuse a tier or ask for request arguments, and builds each tier's deployments:
itself, then its ``fallbacks``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from escalate._breaker import DEFAULT_BREAKER, Breaker, check_breaker
from escalate._deployment import Deployment
from escalate._plan import Backend
from escalate._pricing import Price
from escalate._providers import PROVIDERS, Provider, client_flavour
from escalate.exceptions import ConfigurationError

if TYPE_CHECKING:
    from instructor import Mode

__all__ = [
    "BuiltTier",
    "GatedBackend",
    "GuardedBackend",
    "Tier",
    "build_tiers",
    "logprob_support",
    "provider_of",
]


@dataclass(frozen=True)
class Tier:
    """One rung of the ladder, with everything that may differ between rungs.

    ``model`` is ``"provider/model"``: ``openai/gpt-4o-mini``, ``anthropic/claude-sonnet-4-5``,
    or ``compatible/<model>`` for any OpenAI-compatible server (vLLM, Ollama, llama.cpp),
    which needs ``base_url``. Everything else is optional:

    - ``name``: how receipts call this tier (default: ``model``).
    - ``client``: a ready SDK client (``openai.OpenAI``, ``openai.AsyncOpenAI``,
      ``anthropic.Anthropic``, ``anthropic.AsyncAnthropic``); its own retries are switched
      off. Or ``base_url`` and ``api_key`` to build one (the key defaults to the SDK's
      environment variable).
    - ``mode``: the instructor mode (default: instructor's for the provider).
    - ``create_kwargs``: extra arguments for every request (temperature, max_tokens, ...);
      not the ones escalate sets itself (``model``, ``messages``, ``response_model``,
      ``stream``, ``max_retries``, ``hooks``).
    - ``max_reasks``: re-asks instructor may make on this tier after a validation error
      before the task moves up (default 0).
    - ``timeout``: seconds per request.
    - ``price``: a :class:`Price` that overrides genai-prices for this tier.
    - ``fallbacks``: equivalent deployments (strings or Tiers) tried, in order, when this
      one keeps failing at the provider.
    - ``gates``: gates for this tier's answers only, run after the function's own.
    - ``gate_reasks``: how often a gate's rejection is re-asked on this tier, with the
      gate's reason fed back, before the task moves up (default 0).
    - ``on_timeout``: ``"retry"`` (a timeout is a provider failure: retried, then
      sideways) or ``"escalate"`` (the tier is too slow: move up at once).
    - ``stream``: stream the answer (instructor's partial streaming), so listeners get
      :class:`~escalate.events.PartialAnswer` events as it arrives. A streamed answer is
      validated once complete; streaming tiers make no re-asks, and gates see no raw
      completion (no logprobs).
    - ``breaker``: when this tier's deployments' circuit breakers open
      (:class:`~escalate.Breaker`; on by default), or ``None`` to ignore them.
    """

    model: str
    name: str | None = field(default=None, kw_only=True)
    client: Any = field(default=None, kw_only=True, repr=False)
    base_url: str | None = field(default=None, kw_only=True)
    api_key: str | None = field(default=None, kw_only=True, repr=False)
    mode: Mode | None = field(default=None, kw_only=True)
    create_kwargs: Mapping[str, Any] = field(default_factory=dict, kw_only=True)
    max_reasks: int = field(default=0, kw_only=True)
    timeout: float | None = field(default=None, kw_only=True)
    price: Price | None = field(default=None, kw_only=True)
    fallbacks: Sequence[Tier | str] = field(default=(), kw_only=True)
    gates: Sequence[Any] = field(default=(), kw_only=True)
    gate_reasks: int = field(default=0, kw_only=True)
    on_timeout: Literal["retry", "escalate"] = field(default="retry", kw_only=True)
    stream: bool = field(default=False, kw_only=True)
    breaker: Breaker | None = field(default=DEFAULT_BREAKER, kw_only=True)

    @property
    def display_name(self) -> str:
        """How receipts name the tier: ``name``, else ``model``."""
        return self.name or self.model


# --- checking one tier ---------------------------------------------------------------------

_OWNED_KWARGS: dict[str, str | None] = {
    "model": "Tier('provider/model')",
    "messages": "what the prompt function returns",
    "response_model": "@escalating(response_model=...)",
    "stream": "Tier(stream=True)",
    "max_retries": "Tier(max_reasks=...)",
    "hooks": "@escalating(hooks=[...]) or escalate.events.set_hooks",
}
"""create_kwargs escalate sets itself on every request, and what to use instead."""


def _as_tier(spec: Tier | str, where: str) -> Tier:
    """``spec`` as a checked Tier, or a ConfigurationError that says what to write."""
    if isinstance(spec, str):
        spec = Tier(spec)
    if not isinstance(spec, Tier):
        raise ConfigurationError(
            f"{where}: a tier is a 'provider/model' string or a Tier, got {type(spec).__name__}"
        )
    provider = _provider(spec, where)
    if provider.needs_base_url and not spec.base_url and spec.client is None:
        raise ConfigurationError(f"{where}: tier {spec.model!r} needs base_url=...")
    if spec.client is not None:
        given = client_flavour(spec.client)[0]
        if given != provider.sdk:
            raise ConfigurationError(
                f"{where}: tier {spec.model!r} needs an {provider.sdk} client, got an {given} one"
            )
    _check_create_kwargs(spec, where)
    _check_options(spec, where)
    return spec


def _provider(spec: Tier, where: str) -> Provider:
    name, slash, model = spec.model.partition("/")
    if not slash or not name or not model:
        raise ConfigurationError(
            f"{where}: tier {spec.model!r} must be 'provider/model', "
            f"e.g. 'openai/gpt-4o-mini' (providers: {', '.join(PROVIDERS)})"
        )
    if name not in PROVIDERS:
        raise ConfigurationError(
            f"{where}: unknown provider {name!r} in {spec.model!r}; known providers: "
            f"{', '.join(PROVIDERS)} (any OpenAI-compatible server is "
            f"Tier('compatible/<model>', base_url=...))"
        )
    return PROVIDERS[name]


def _check_create_kwargs(spec: Tier, where: str) -> None:
    """Refuse the request arguments escalate owns: a tier's copy would be overwritten (or
    would break the receipt), so say what replaces each."""
    owned = [key for key in _OWNED_KWARGS if key in spec.create_kwargs]
    if not owned:
        return
    instead = "; ".join(f"{key} -> {_OWNED_KWARGS[key]}" for key in owned)
    raise ConfigurationError(
        f"{where}: tier {spec.model!r} create_kwargs may not set "
        f"{', '.join(repr(key) for key in owned)}: escalate sets them on every request "
        f"(instead: {instead})"
    )


def _check_options(spec: Tier, where: str) -> None:
    if not isinstance(spec.max_reasks, int) or spec.max_reasks < 0:
        raise ConfigurationError(
            f"{where}: max_reasks must be an int >= 0, got {spec.max_reasks!r}"
        )
    if spec.timeout is not None and not spec.timeout > 0:
        raise ConfigurationError(f"{where}: timeout must be > 0 seconds, got {spec.timeout!r}")
    if not isinstance(spec.gate_reasks, int) or spec.gate_reasks < 0:
        raise ConfigurationError(
            f"{where}: gate_reasks must be an int >= 0, got {spec.gate_reasks!r}"
        )
    if spec.on_timeout not in ("retry", "escalate"):
        raise ConfigurationError(
            f"{where}: on_timeout must be 'retry' or 'escalate', got {spec.on_timeout!r}"
        )
    if spec.price is not None and not isinstance(spec.price, Price):
        raise ConfigurationError(f"{where}: price must be a Price, got {type(spec.price).__name__}")
    check_breaker(spec.breaker, where)


# --- what a tier can do (for gates) ------------------------------------------------------


def provider_of(tier: Tier | str) -> Provider | None:
    """The provider entry of a tier (its capabilities as data); None for an unknown one."""
    model = tier if isinstance(tier, str) else tier.model
    return PROVIDERS.get(model.partition("/")[0])


def logprob_support(tier: Tier | str) -> str | None:
    """``None`` when every deployment of ``tier`` returns its answer's token logprobs;
    else why not, naming the provider and mode (a gate that needs logprobs refuses the
    tier with it). Unknown providers are left to the tier's own check."""
    spec = Tier(tier) if isinstance(tier, str) else tier
    for config in (spec, *spec.fallbacks):
        config = Tier(config) if isinstance(config, str) else config
        provider = provider_of(config)
        reason = provider.logprob_reason(config.model, config.mode) if provider else None
        if reason is not None:
            return reason
    return None


# --- building the ladder -----------------------------------------------------------------


@runtime_checkable
class GatedBackend(Backend, Protocol):
    """A backend standing as a tier with gates of its own (the testing kit's fake tiers),
    run after the function's gates, like ``Tier(gates=...)``."""

    @property
    def gates(self) -> Sequence[Any]:
        """Gates for this backend's answers only."""
        ...


@runtime_checkable
class GuardedBackend(Backend, Protocol):
    """A backend standing as a tier with a circuit breaker setting of its own (the testing
    kit's fake tiers), like ``Tier(breaker=...)``."""

    @property
    def breaker(self) -> Breaker | None:
        """When its circuit breaker opens; None: it has none."""
        ...


@dataclass(frozen=True)
class BuiltTier:
    """A checked tier and its deployments, in the order they are tried."""

    name: str
    deployments: tuple[Backend, ...]
    gates: tuple[Any, ...] = ()
    gate_reasks: int = 0
    on_timeout: Literal["retry", "escalate"] = "retry"
    breaker: Breaker | None = DEFAULT_BREAKER


def build_tiers(
    specs: Sequence[Tier | str | Backend], gates: Sequence[Any] = ()
) -> tuple[BuiltTier, ...]:
    """Check every tier once, when the decorator is applied, and build its deployments.

    ``gates`` are the function's own gates: each may refuse a tier (``check_tier``) or
    need request arguments on it (``request_kwargs``, such as ``logprobs=True``).
    """
    if isinstance(specs, (str, Tier, Backend)):
        raise ConfigurationError("tiers must be a list of tiers, cheapest first, not one tier")
    if not specs:
        raise ConfigurationError("tiers is empty: give at least one 'provider/model'")
    built: list[BuiltTier] = []
    for position, spec in enumerate(specs):
        tier = _build_tier(spec, position, tuple(gates))
        if tier.name in {b.name for b in built}:
            raise ConfigurationError(
                f"tiers[{position}]: duplicate tier name {tier.name!r}; "
                "give one of them Tier(..., name='...')"
            )
        built.append(tier)
    return tuple(built)


def _build_tier(spec: Tier | str | Backend, position: int, gates: tuple[Any, ...]) -> BuiltTier:
    if not isinstance(spec, (str, Tier)) and isinstance(spec, Backend):
        own = tuple(spec.gates) if isinstance(spec, GatedBackend) else ()
        breaker = spec.breaker if isinstance(spec, GuardedBackend) else DEFAULT_BREAKER
        check_breaker(breaker, f"tiers[{position}] ({spec.name!r})")
        return BuiltTier(spec.name, (spec,), own, breaker=breaker)
    where = f"tiers[{position}]"
    tier = _as_tier(spec, where)
    extra = _gate_request_kwargs(tier, (*gates, *tier.gates), where)
    name = tier.display_name
    deployments: list[Backend] = [Deployment(tier, name=name, tier_name=name, extra=extra)]
    for index, fallback_spec in enumerate(tier.fallbacks):
        fallback = _as_tier(fallback_spec, f"{where}.fallbacks[{index}]")
        name = fallback.display_name
        if name in {d.name for d in deployments}:
            name = f"{name}#{index + 2}"
        deployments.append(
            Deployment(fallback, name=name, tier_name=tier.display_name, extra=extra)
        )
    return BuiltTier(
        tier.display_name,
        tuple(deployments),
        tuple(tier.gates),
        tier.gate_reasks,
        tier.on_timeout,
        tier.breaker,
    )


def _gate_request_kwargs(tier: Tier, gates: Sequence[Any], where: str) -> dict[str, Any]:
    """Let each gate refuse the tier, and gather the request arguments the gates need.

    Gates are user callables: ``check_tier`` and ``request_kwargs`` are optional there."""
    extra: dict[str, Any] = {}
    for gate in gates:
        if not callable(gate):
            raise ConfigurationError(f"{where}: a gate must be callable, got {gate!r}")
        check = getattr(gate, "check_tier", None)
        if check is not None:
            check(tier)
        extra.update(getattr(gate, "request_kwargs", None) or {})
    return extra
