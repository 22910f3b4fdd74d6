"""self_reported: directly, and its scores on the receipt end to end."""

from __future__ import annotations

from typing import Any

import pytest

from escalate import ConfigurationError, receipt_of
from escalate.gates import Rejected, self_reported
from escalate.testing._server import ProviderServer, Reply
from tests._gates_helpers import Rated, answer, cheap_and_strong, ctx, reason_of

# --- self_reported ------------------------------------------------------------------------


def test_self_reported_scores_and_rejects() -> None:
    gate = self_reported()
    assert gate(answer(confidence=0.9), ctx()) == 0.9
    assert gate(answer(confidence=1), ctx()) == 1.0
    assert gate(answer(confidence=85), ctx()) == pytest.approx(0.85)  # a percentage
    with pytest.raises(Rejected) as caught:
        gate(answer(confidence=55), ctx())
    assert caught.value.reason == "self-reported confidence 0.55 < 0.70"
    assert caught.value.score == pytest.approx(0.55)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "confidence is missing (None), not a confidence number"),
        (-0.1, "confidence is -0.1: a confidence is 0..1 (or 0..100)"),
        (250, "confidence is 250.0: a confidence is 0..1 (or 0..100)"),
    ],
)
def test_self_reported_rejects_what_is_no_confidence(value: Any, reason: str) -> None:
    assert reason_of(self_reported(), answer(confidence=value)) == reason


def test_self_reported_reads_another_field_and_refuses_text() -> None:
    assert self_reported("total", threshold=0.1)(answer(total=0.2), ctx()) == 0.2
    assert reason_of(self_reported("summary"), answer()) == (
        "summary is a str, not a confidence number"
    )
    with pytest.raises(ConfigurationError, match="threshold must be in"):
        self_reported(threshold=70)


# --- end to end --------------------------------------------------------------------------


def test_self_reported_scores_reach_the_receipt(
    build: Any, server: ProviderServer, openai_tier: Any
) -> None:
    extract = build(
        tiers=cheap_and_strong(openai_tier),
        response_model=Rated,
        gates=[self_reported(threshold=0.7)],
    )
    server.script("gpt-4o-mini", Reply(data={"summary": "Paid.", "confidence": 40}))
    server.script("gpt-4o", Reply(data={"summary": "Paid in full.", "confidence": 0.95}))
    receipt = receipt_of(extract("doc"))
    cheap, strong = receipt.attempts
    assert cheap.reason == "self_reported: self-reported confidence 0.40 < 0.70"
    assert cheap.scores == {"self_reported": pytest.approx(0.4)}
    assert strong.scores == {"self_reported": pytest.approx(0.95)}
