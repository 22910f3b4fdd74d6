"""What one call of a tier came to: the vocabulary between the tiers and the engine.

The tiers turn whatever the SDKs and instructor did into one of these; the engine decides
what follows from them alone, knowing nothing of any SDK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from escalate._receipt import Attempt

__all__ = ["Answered", "Failed", "FailureKind", "TierCall"]

FailureKind = Literal["provider", "quality", "error"]
"""``provider``: transient trouble at the provider (retry, then sideways).
``quality``: the answer was not good enough (up a tier).
``error``: an exception no trigger matches; it passes through unless ``on`` matches it."""


@dataclass(frozen=True, slots=True)
class Answered:
    """The tier gave an answer that parsed and validated."""

    value: Any
    attempts: tuple[Attempt, ...]
    completion: Any = None
    """The raw completion of the answering request (for gates that read logprobs)."""
    choices: tuple[TierCall, ...] = ()
    """Every choice of a request that asked for several (``n``), in order, each validated
    on its own (an answer with no attempts, or a quality failure); empty otherwise."""


@dataclass(frozen=True, slots=True)
class Failed:
    """The tier gave no usable answer."""

    kind: FailureKind
    trigger: str
    reason: str
    error: BaseException
    attempts: tuple[Attempt, ...]
    retry_after: float | None = None
    gate: str | None = None
    """The gate that rejected the answer (``trigger == "gate"``)."""


TierCall = Answered | Failed
