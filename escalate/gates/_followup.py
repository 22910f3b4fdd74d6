"""Confidence by follow-up question: ask the tier how sure it is of the answer it gave.

After a tier answers, the engine sends the same tier one more request: the conversation,
the answer as the assistant's turn, and a question asking for a confidence between 0 and
1. The reply is that request's own attempt on the receipt (its cost counted); the gate
rejects below its threshold. Unlike ``self_reported``, the answer's own model needs no
confidence field, and the model judges an answer it can see whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from escalate.exceptions import ConfigurationError
from escalate.gates._protocol import FollowUpGate, GateContext, Rejected

__all__ = ["DEFAULT_QUESTION", "AskedConfidence", "Confidence", "asked_confidence"]

DEFAULT_QUESTION = (
    "How confident are you that your answer above is correct and complete? Reply with a "
    "confidence between 0 (surely wrong) and 1 (certainly right). Be honest: a low number "
    "sends the question to a stronger model, which costs little; a wrong answer costs more."
)


class Confidence(BaseModel):
    """A model's confidence in its own answer."""

    confidence: float = Field(ge=0, le=1, description="Between 0 and 1.")


@dataclass(frozen=True)
class AskedConfidence:
    """See :func:`asked_confidence`."""

    threshold: float
    question: str = DEFAULT_QUESTION
    name: str = "asked_confidence"

    def follow_up(
        self, answer: Any, messages: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], type[BaseModel]]:
        """The follow-up request: the conversation, the answer, the question."""
        shown = answer.model_dump_json() if isinstance(answer, BaseModel) else str(answer)
        turn = [{"role": "assistant", "content": shown}, {"role": "user", "content": self.question}]
        return [*messages, *turn], Confidence

    def __call__(self, answer: Any, context: GateContext) -> float:
        reply = context.follow_up
        if not isinstance(reply, Confidence):
            raise Rejected("the follow-up question got no usable confidence", score=0.0)
        if reply.confidence < self.threshold:
            raise Rejected(
                f"asked, the model gives its answer {reply.confidence:.2f} < {self.threshold:.2f}",
                score=reply.confidence,
            )
        return reply.confidence


def asked_confidence(
    threshold: float = 0.7, *, question: str = DEFAULT_QUESTION
) -> AskedConfidence:
    """Ask the tier, in one more request, how confident it is in its answer; reject below
    ``threshold``. Costs one short request on the tier (on the receipt)."""
    if not 0 <= threshold <= 1:
        raise ConfigurationError(f"asked_confidence threshold must be in [0, 1], got {threshold!r}")
    if not question.strip():
        raise ConfigurationError("asked_confidence question is empty")
    return AskedConfidence(threshold, question)


if TYPE_CHECKING:  # mypy checks the gate has the capabilities the engine uses
    _FollowUpGate: type[FollowUpGate] = AskedConfidence
