"""Self-escalation: a cheaper tier may answer, or ask to escalate.

A cheaper tier is sent one extra system message (the policy) and asked for a
:func:`choice_model` of the answer: either ``answer`` or ``escalate`` (a reason and a
self-contained restatement of the question). The choice is a control signal, not an
answer: when a tier takes it, the task moves up (trigger ``self_escalation``), and the
next tier sees the user's conversation only. The strongest tier is never offered it.

One wrapper model works through instructor in every mode, for OpenAI and Anthropic alike,
and for every response model (a plain-text answer is ``{"answer": "..."}``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, Field, create_model, model_validator

from escalate.exceptions import ConfigurationError

__all__ = ["SelfEscalated", "SelfEscalation", "SelfEscalationRequest", "choice_model"]

_DEFAULT_POLICY = """\
You are the first, cheaper model in a chain of models; a stronger one stands behind you.
Answer only when you can answer well. When the request needs expertise or careful reasoning
beyond you (for example advanced physics or mathematics, legal, medical or tax advice, a
security or architecture review, or anything you are unsure of), do not attempt it: fill
`escalate` with a short reason and the question restated so that it stands on its own,
and leave `answer` empty. Otherwise fill `answer` and leave `escalate` empty."""


class SelfEscalationRequest(BaseModel):
    """What a tier says when it asks to escalate."""

    reason: str = Field(description="Why this is beyond you, in one sentence.")
    question: str = Field(
        description="The question, restated so a stronger model can answer it on its own."
    )


class SelfEscalated(Exception):
    """The ``__cause__`` recorded when a tier asked to escalate (never raised to users
    unless every tier asked)."""

    def __init__(self, request: SelfEscalationRequest) -> None:
        super().__init__(request.reason)
        self.request = request


@dataclass(frozen=True, kw_only=True)
class SelfEscalation:
    """Let cheaper tiers ask to escalate instead of answering.

    ``policy`` is the system prompt that says what counts as too hard (the default is
    :attr:`DEFAULT_POLICY`); ``max_per_call`` bounds how many times one call may be
    escalated this way (the loop guard): past it, tiers must answer.
    """

    DEFAULT_POLICY: ClassVar[str] = _DEFAULT_POLICY
    policy: str = _DEFAULT_POLICY
    max_per_call: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.policy, str) or not self.policy.strip():
            raise ConfigurationError("SelfEscalation.policy is empty")
        if not isinstance(self.max_per_call, int) or self.max_per_call < 1:
            raise ConfigurationError(
                f"SelfEscalation.max_per_call must be an int >= 1, got {self.max_per_call!r}"
            )


class _Choice(BaseModel):
    answer: Any = None
    escalate: SelfEscalationRequest | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> _Choice:
        if (self.answer is None) == (self.escalate is None):
            raise ValueError("fill exactly one of `answer` and `escalate`")
        return self


def choice_model(answer_type: Any, name: str) -> type[_Choice]:
    """``{answer: <answer_type> | None, escalate: SelfEscalationRequest | None}``, exactly
    one of them filled."""
    try:
        return _cached_choice(answer_type, name)
    except TypeError:  # an unhashable annotation: build it each time
        return _build_choice(answer_type, name)


@functools.lru_cache(maxsize=256)
def _cached_choice(answer_type: Any, name: str) -> type[_Choice]:
    return _build_choice(answer_type, name)


def _build_choice(answer_type: Any, name: str) -> type[_Choice]:
    optional: Any = answer_type | None
    return create_model(
        f"{name}OrEscalate",
        __base__=_Choice,
        __doc__=f"Either an answer ({name}) or a request to escalate.",
        answer=(optional, Field(None, description="Your answer, if you can give a good one.")),
        escalate=(
            SelfEscalationRequest | None,
            Field(None, description="Fill this instead of answering when it is beyond you."),
        ),
    )
