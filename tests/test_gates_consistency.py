"""consistency, directly: what makes two answers agree, which one is returned, its score
and reasons, its configuration. End to end through the engine: tests/test_gating.py."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import BaseModel

from escalate import ConfigurationError
from escalate.gates import GateContext, Rejected, consistency
from tests._gates_helpers import ctx


class Pick(BaseModel):
    label: str
    why: str = ""


class Other(BaseModel):
    value: int


def with_samples(*samples: Any) -> GateContext:
    return dataclasses.replace(ctx(), samples=samples)


def test_answers_agree_on_the_field_normalised() -> None:
    gate = consistency(3, field="label")
    assert gate.samples == 3
    assert gate.key(Pick(label=" Ham  Spam ")) == gate.key(Pick(label="ham spam", why="x"))
    assert gate.key({"label": [1, 2]}) == gate.key({"label": [1, 2]})
    whole = consistency(2)
    assert whole.key(Pick(label="a")) != whole.key(Pick(label="a", why="b"))


def test_the_majority_is_returned_the_earliest_on_ties() -> None:
    gate = consistency(4, field="label")
    picks = [Pick(label="a", why="1"), Pick(label="b", why="2"), Pick(label="B", why="3")]
    assert gate.choose(picks).why == "2"
    assert gate.choose(picks[:2]).why == "1"


def test_the_score_is_the_share_that_agrees() -> None:
    gate = consistency(4, field="label", min_agreement=0.5)
    samples = (Pick(label="a"), Pick(label="a"), Pick(label="b"), Pick(label="c"))
    assert gate(samples[0], with_samples(*samples)) == 0.5
    with pytest.raises(Rejected) as caught:
        gate(samples[2], with_samples(*samples))
    assert caught.value.reason == "1 of 4 samples agree on 'label' (0.25 < 0.50)"
    assert caught.value.score == 0.25


def test_too_few_samples_and_a_missing_field_reject() -> None:
    gate = consistency(3, field="label")
    with pytest.raises(Rejected, match="only 1 of 3 samples answered") as caught:
        gate(Pick(label="a"), ctx())
    assert caught.value.score == 0.0
    with pytest.raises(Rejected, match=r"no field 'label' \(fields: value\)"):
        consistency(2, field="label").key(Other(value=1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 1}, "at least 2 samples"),
        ({"n": "3"}, "at least 2 samples"),
        ({"min_agreement": 0}, r"min_agreement must be in \(0, 1\]"),
        ({"min_agreement": 1.5}, r"min_agreement must be in \(0, 1\]"),
    ],
)
def test_consistency_configuration_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        consistency(**kwargs)
