"""The model's own token probabilities: :func:`logprob_confidence`.

It reads the logprobs the answering request returned: nothing extra to pay, but only some
tiers return them (see :func:`logprob_refusal`, the one place this gate knows providers).
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from escalate.exceptions import ConfigurationError
from escalate.gates._protocol import GateContext, Rejected, RequestingGate, TierAwareGate

if TYPE_CHECKING:
    from escalate._config import Tier

__all__ = ["LogprobConfidence", "Statistic", "logprob_confidence", "logprob_refusal"]

Statistic = Literal["mean", "min", "quantile"]


def logprob_refusal(tier: Tier) -> str | None:
    """Why ``tier`` (one deployment, not its fallbacks) returns no logprobs, or None when
    it does. All this gate knows of providers is here, in one place: Anthropic returns
    none; OpenAI returns them for message content, so only in instructor's JSON modes."""
    if tier.model.partition("/")[0] == "anthropic":
        return "Anthropic's API returns no logprobs"
    mode = getattr(tier.mode, "value", tier.mode)
    if mode in {"json_mode", "json_schema_mode", "markdown_json_mode"}:
        return None
    return (
        f"in instructor mode {mode or 'tool_call'}, OpenAI returns no logprobs for tool-call "
        "arguments: use Tier(..., mode=instructor.Mode.JSON_SCHEMA)"
    )


def _quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values``, interpolated linearly between order statistics."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _token_logprobs(completion: Any) -> list[float] | None:
    """The logprobs of the answer's tokens (OpenAI ``choices[0].logprobs.content``)."""
    choices = getattr(completion, "choices", None)
    if not choices:
        return None
    logprobs = getattr(choices[0], "logprobs", None)
    content = getattr(logprobs, "content", None)
    if not content:
        return None
    return [float(token.logprob) for token in content]


def _deployments_of(tier: Tier) -> list[Tier]:
    """The tier and its fallbacks, each a Tier."""
    from escalate._config import Tier

    if not isinstance(tier, Tier):
        return []
    return [tier, *(Tier(f) if isinstance(f, str) else f for f in tier.fallbacks)]


@dataclass(frozen=True)
class LogprobConfidence:
    """The model's own token probabilities are high enough (see :func:`logprob_confidence`)."""

    threshold: float
    statistic: Statistic
    quantile: float
    name: str

    # top_logprobs too: llama.cpp's server returns no logprobs without it (OpenAI does either way).
    request_kwargs: ClassVar[Mapping[str, Any]] = types.MappingProxyType(
        {"logprobs": True, "top_logprobs": 1}
    )
    """Merged into the tier's requests: OpenAI returns logprobs only when asked."""

    @property
    def label(self) -> str:
        """How reasons name the statistic: ``p10``, ``mean``, ``min``."""
        if self.statistic == "quantile":
            return f"p{self.quantile * 100:g}"
        return self.statistic

    def check_tier(self, tier: Tier) -> None:
        """Refuse, when the decorator is applied, a tier that can return no logprobs."""
        for config in _deployments_of(tier):
            if (why := logprob_refusal(config)) is not None:
                raise ConfigurationError(f"{self.name} cannot gate tier {config.model!r}: {why}")

    def score(self, logprobs: Sequence[float]) -> float:
        """The statistic of the token probabilities ``exp(logprob)``."""
        probabilities = [math.exp(min(lp, 0.0)) for lp in logprobs]
        if self.statistic == "mean":
            return math.fsum(probabilities) / len(probabilities)
        if self.statistic == "min":
            return min(probabilities)
        return _quantile(probabilities, self.quantile)

    def __call__(self, answer: Any, context: GateContext, /) -> float:
        logprobs = _token_logprobs(context.completion)
        if logprobs is None:
            raise Rejected(
                "the completion carries no logprobs (they are requested with logprobs=True "
                "and come only with JSON-mode content, never with tool calls)"
            )
        if any(math.isnan(lp) for lp in logprobs):
            raise Rejected("the completion carries a logprob that is not a number (nan)")
        value = self.score(logprobs)
        if value < self.threshold:
            raise Rejected(
                f"confidence {value:.2f} ({self.label} of {len(logprobs)} tokens) "
                f"< {self.threshold:.2f}",
                score=value,
            )
        return value


def logprob_confidence(
    threshold: float,
    *,
    statistic: Statistic = "quantile",
    quantile: float = 0.1,
    name: str | None = None,
) -> LogprobConfidence:
    """Reject an answer whose tokens the model itself found unlikely.

    The token probabilities are ``exp(logprob)`` over the answer's tokens
    (``completion.choices[0].logprobs.content``); the score is their ``statistic``:

    - ``"quantile"`` (default): the ``quantile`` (0.1: the 10th percentile), so a handful
      of doubtful tokens, a guessed number or name, pull it down;
    - ``"mean"``: biased by length: a long answer of confident boilerplate (JSON keys,
      punctuation, copied text) averages out the few tokens that matter;
    - ``"min"``: the single least likely token; strict, and noisy on long answers.

    The score is kept in the receipt (``attempt.scores[name]``, default name
    ``logprob_confidence``); below ``threshold`` the answer is rejected with a reason such
    as ``"confidence 0.62 (p10 of 57 tokens) < 0.80"``.

    It costs nothing extra (``logprobs=True`` is added to the tier's requests), but only
    OpenAI (and OpenAI-compatible servers) return logprobs, and only for content: give the
    tier ``mode=instructor.Mode.JSON_SCHEMA`` (or ``JSON``, ``MD_JSON``). Other tiers are
    refused when the decorator is applied. Note that the structural tokens of the JSON
    count too.
    """
    _check_probability("threshold", threshold)
    if statistic not in ("mean", "min", "quantile"):
        raise ConfigurationError(
            f"logprob_confidence: statistic must be 'mean', 'min' or 'quantile', got {statistic!r}"
        )
    _check_probability("quantile", quantile)
    return LogprobConfidence(
        float(threshold), statistic, float(quantile), name or "logprob_confidence"
    )


def _check_probability(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"logprob_confidence: {what} must be a number, got {value!r}")
    if not 0 <= value <= 1:
        raise ConfigurationError(
            f"logprob_confidence: {what} is a probability in [0, 1], got {value!r}"
        )


if TYPE_CHECKING:  # mypy checks the gate has the capabilities the engine uses
    _TierAwareGate: type[TierAwareGate] = LogprobConfidence
    _RequestingGate: type[RequestingGate] = LogprobConfidence
