"""asked_confidence, directly: the follow-up request it builds, how it reads the reply,
its configuration. End to end through the engine: tests/test_gating.py."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import BaseModel

from escalate import ConfigurationError
from escalate.gates import Rejected, asked_confidence
from escalate.gates._followup import DEFAULT_QUESTION, Confidence
from tests._gates_helpers import ctx


class Total(BaseModel):
    total: float


def test_the_follow_up_shows_the_answer_and_asks_the_question() -> None:
    messages = [{"role": "user", "content": "What is the total?"}]
    asked, model = asked_confidence().follow_up(Total(total=12.5), messages)
    assert model is Confidence
    assert asked == [
        *messages,
        {"role": "assistant", "content": '{"total":12.5}'},
        {"role": "user", "content": DEFAULT_QUESTION},
    ]
    assert messages == [{"role": "user", "content": "What is the total?"}]  # not changed
    text, _ = asked_confidence(question="Sure?").follow_up("12.5", [])
    assert text == [{"role": "assistant", "content": "12.5"}, {"role": "user", "content": "Sure?"}]


def test_the_reply_is_the_score_and_rejects_below_the_threshold() -> None:
    gate = asked_confidence(0.7)
    context = dataclasses.replace(ctx(), follow_up=Confidence(confidence=0.9))
    assert gate(Total(total=1), context) == 0.9
    with pytest.raises(Rejected) as caught:
        gate(Total(total=1), dataclasses.replace(context, follow_up=Confidence(confidence=0.35)))
    assert caught.value.reason == "asked, the model gives its answer 0.35 < 0.70"
    assert caught.value.score == 0.35


def test_no_usable_reply_rejects_with_a_zero_score() -> None:
    with pytest.raises(Rejected, match="no usable confidence") as caught:
        asked_confidence()(Total(total=1), ctx())
    assert caught.value.score == 0.0


def test_asked_confidence_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match=r"threshold must be in \[0, 1\]"):
        asked_confidence(1.5)
    with pytest.raises(ConfigurationError, match="question is empty"):
        asked_confidence(question="  ")
