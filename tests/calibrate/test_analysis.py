"""The analysis: the sweep of the observations by hand, and a calibration written to JSON
and read back unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from escalate.calibrate import Calibration, Objective, Observations, analyse


def test_the_sweep_by_hand(observed: Observations) -> None:
    result = analyse(observed)
    table = {row.label: (row.escalated, row.correct, row.kept) for row in result.rows}
    assert table == {
        "0.3": (1, 4, 5),  # q5 is invalid: it escalates at every threshold
        "0.6": (2, 4, 4),
        "0.8": (3, 4, 3),
        "0.9": (4, 4, 2),
        "0.95": (5, 5, 1),
        ">0.95": (6, 5, 0),
    }
    by_label = {row.label: row for row in result.rows}
    assert by_label["0.95"].kept_accuracy == 1.0 and by_label[">0.95"].kept_accuracy is None
    cheap, strong = result.baselines
    assert (cheap.correct, strong.correct) == (3, 5)
    # An escalated call pays for the refused cheap attempt too.
    assert by_label[">0.95"].cost_usd == cheap.cost_usd + strong.cost_usd
    assert by_label[">0.95"].cost_usd > strong.cost_usd
    assert by_label[">0.95"].saving is not None and by_label[">0.95"].saving < 0


def test_json_round_trip(observed: Observations, tmp_path: Path) -> None:
    result = analyse(observed, Objective(min_accuracy=0.6), key="solve.confidence")
    path = result.save(tmp_path / "out" / "calibration.json")
    again = Calibration.load(path)
    assert again == result
    assert again.table() == result.table()
    data = json.loads(path.read_text())
    assert data["picked"]["threshold"] == 0.3
    assert data["economics"]["break_even_escalation_rate"] == pytest.approx(
        result.economics.break_even_escalation_rate
    )
    assert len(data["rows"]) == 6 and len(data["observations"]["items"]) == 6
    assert Observations.from_dict(observed.to_dict()) == observed
