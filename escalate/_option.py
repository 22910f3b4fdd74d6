"""Model-opted escalation: cheaper tiers may answer, or ask to escalate.

A cheaper tier is sent one extra system message (the policy) and asked for a
:func:`option_model` of the answer: either ``answer`` or ``escalate`` (a reason and a
self-contained restatement of the question). The choice is a control signal, not an
answer: when a tier takes it, the task moves up, and the next tier sees the user's
conversation only. The strongest tier is never offered the option.

One wrapper model works through instructor in every mode, for OpenAI and Anthropic alike,
for structured and for plain-text answers (a text answer is ``{"text": ...}``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, create_model, model_validator

from escalate.exceptions import ConfigurationError

__all__ = [
    "DEFAULT_POLICY",
    "EscalationOption",
    "EscalationRequest",
    "ModelEscalated",
    "option_model",
]

DEFAULT_POLICY = """\
You are the first, cheaper model in a chain of models; a stronger one stands behind you.
Answer only when you can answer well. When the request needs expertise or careful reasoning
beyond you (for example advanced physics or mathematics, legal, medical or tax advice, a
security or architecture review, or anything you are unsure of), do not attempt it: fill
`escalate` with a short reason and the question restated so that it stands on its own,
and leave `answer` empty. Otherwise fill `answer` and leave `escalate` empty."""


class EscalationRequest(BaseModel):
    """What a tier says when it asks to escalate."""

    reason: str = Field(description="Why this is beyond you, in one sentence.")
    question: str = Field(
        description="The question, restated so a stronger model can answer it on its own."
    )


class ModelEscalated(Exception):
    """The ``__cause__`` recorded when a tier asked to escalate (never raised to users
    unless every tier asked)."""

    def __init__(self, request: EscalationRequest) -> None:
        super().__init__(request.reason)
        self.request = request


@dataclass(frozen=True, kw_only=True)
class EscalationOption:
    """Offer cheaper tiers the choice to escalate instead of answering.

    ``policy`` is the system prompt that says what counts as too hard (a sensible default
    ships: :data:`DEFAULT_POLICY`); ``max_escalations`` bounds how many times one call may
    be escalated this way (the loop guard): past it, tiers must answer.
    """

    policy: str = DEFAULT_POLICY
    max_escalations: int = 3

    def __post_init__(self) -> None:
        if not self.policy.strip():
            raise ConfigurationError("EscalationOption.policy is empty")
        if not isinstance(self.max_escalations, int) or self.max_escalations < 1:
            raise ConfigurationError(
                "EscalationOption.max_escalations must be an int >= 1, "
                f"got {self.max_escalations!r}"
            )


class _Choice(BaseModel):
    answer: Any = None
    escalate: EscalationRequest | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> _Choice:
        if (self.answer is None) == (self.escalate is None):
            raise ValueError("fill exactly one of `answer` and `escalate`")
        return self


@functools.cache
def option_model(answer_model: type[BaseModel]) -> type[_Choice]:
    """``{answer: <answer_model> | None, escalate: EscalationRequest | None}``, exactly one."""
    answer_type: Any = answer_model | None
    return create_model(
        f"{answer_model.__name__}OrEscalate",
        __base__=_Choice,
        __doc__=f"Either an answer ({answer_model.__name__}) or a request to escalate.",
        answer=(answer_type, Field(None, description="Your answer, if you can give a good one.")),
        escalate=(
            EscalationRequest | None,
            Field(None, description="Fill this instead of answering when it is beyond you."),
        ),
    )
