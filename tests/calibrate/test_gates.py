"""The gates of calibration: a built-in gate that puts its score on its rejections
calibrates like a score_gate."""

from __future__ import annotations

import pytest

from escalate import Tier, escalating
from escalate.calibrate import calibrate
from escalate.testing._server import ProviderServer

from ..conftest import KEY
from .conftest import CHEAP, ITEMS, STRONG, Answer


def test_a_built_in_gate_calibrates_the_same(served: ProviderServer) -> None:
    gates = pytest.importorskip("escalate.gates")
    tiers = [
        Tier(
            f"openai/{CHEAP}",
            base_url=served.openai_base_url,
            api_key=KEY,
            gates=[gates.self_reported("confidence", 0.7)],
        ),
        Tier(f"anthropic/{STRONG}", base_url=served.anthropic_base_url, api_key=KEY),
    ]

    @escalating(tiers=tiers, response_model=Answer)
    def solve(question: str) -> str:
        return f"Answer the question: {question}"

    result = calibrate(solve, ITEMS, gate="self_reported", expected_field="value")
    assert [row.label for row in result.rows] == ["0.3", "0.6", "0.8", "0.9", "0.95", ">0.95"]
    assert result.picked is not None and result.picked.label == "0.95"
