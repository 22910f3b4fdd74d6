"""The worked example of calibration (escalate.demo.calibration): GSM8K's recorded answers
calibrated and replayed through the real SDKs, the mechanical score, and the command."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from decimal import Decimal
from pathlib import Path

import pytest

from escalate.calibrate import Objective
from escalate.cli import main
from escalate.demo.answers import final_answer
from escalate.demo.calibration import GSM8KResult, calibrate_gsm8k, solution_score


def _run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        status = main(argv)
    return status, out.getvalue()


@pytest.fixture(scope="module")
def gsm8k() -> GSM8KResult:
    return calibrate_gsm8k(limit=24, objective=Objective(min_accuracy=0.8))


def test_gsm8k_the_picked_row_equals_a_replay(gsm8k: GSM8KResult) -> None:
    picked, replayed = gsm8k.calibration.picked, gsm8k.replay
    assert picked is not None and replayed is not None
    assert replayed.threshold == picked.threshold
    assert replayed.mismatches(picked) == [] and gsm8k.matches
    assert 0 < picked.escalated < picked.items and picked.accuracy >= 0.8
    report = gsm8k.report()
    line = next(line for line in report.splitlines() if line.startswith("picked ->"))
    assert f"{picked.escalation_rate:.1%}" in line and f"{picked.accuracy:.1%}" in line
    assert "matches the table's row exactly" in report


def test_gsm8k_observations_agree_with_the_data(gsm8k: GSM8KResult) -> None:
    from escalate.demo import sample

    problems = sample(24)
    calibration = gsm8k.calibration
    cheap, strong = calibration.baselines
    assert cheap.correct == sum(final_answer(p.cheap_response) == p.gold for p in problems)
    assert strong.correct == sum(final_answer(p.strong_response) == p.gold for p in problems)
    scores = [runs[0].score for runs in calibration.observations.runs]
    # Built with threshold 0.9, the gate still recorded the scores below it.
    assert all(s is not None and 0 <= s <= 1 for s in scores)
    assert any(s is not None and s < 0.9 for s in scores)
    assert calibration.economics.break_even_escalation_rate == pytest.approx(
        1 - float(cheap.cost_per_call_usd / strong.cost_per_call_usd)
    )


def test_the_gsm8k_score() -> None:
    question = "Tom has 3 boxes of 4 apples and eats 2. How many are left?"
    right = "3 * 4 = 12 apples. 12 - 2 = 10.\n#### 10"
    assert solution_score(question, right, Decimal(10)) == 1.0
    assert solution_score(question, "3 * 4 = 12 apples. 12 - 2 = 10.", Decimal(10)) == 0.0
    assert solution_score(question, right, Decimal("10.5")) == 0.0
    assert solution_score(question, right, None) == 0.0
    # Each wrong calculation halves the score.
    assert solution_score(question, "3 * 4 = 13 apples. 13 - 2 = 11.\n#### 11", Decimal(11)) == 0.5
    assert solution_score(question, "3 * 4 = 13. 13 - 2 = 10.\n#### 10", Decimal(10)) == 0.25
    # A number of the question left unused (the 2 here) costs up to half.
    assert solution_score(question, "3 * 4 = 12.\n#### 12", Decimal(12)) == round(5 / 6, 4)


def test_gsm8k_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ESCALATE_THRESHOLDS", raising=False)
    status, text = _run(
        ["calibrate", "--gsm8k", "--limit", "10", "--out", str(tmp_path), "--no-plot", "--quiet"]
    )
    assert status == 0, text
    assert "mixtral alone" in text and "gpt-4 alone" in text and "Break-even" in text
    assert "matches the table's row exactly" in text
    saved = json.loads((tmp_path / "thresholds.json").read_text())
    assert set(saved["thresholds"]) == {"solve.gsm8k_score"}
