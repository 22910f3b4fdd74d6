"""The worked example of a learned gate (escalate.demo.learning) and its features
(escalate.demo.features): an honest split by question, the table's rows measured through
the real SDK path, the learned score on a real receipt, and ``escalate learn --gsm8k``."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from escalate import receipt_of
from escalate.cli import main
from escalate.demo import CHEAP_GATES, build_solver, cheap_tier, sample, serve_recorded, strong_tier
from escalate.demo.answers import final_answer, has_answer_line
from escalate.demo.arithmetic import arithmetic_errors
from escalate.demo.features import gsm8k_features, solution_features
from escalate.demo.gsm8k import few_shot_prompt
from escalate.demo.learning import FEATURES, LEARNED, GSM8KLearning, learn_gsm8k
from escalate.learn import Scorer, learned_gate
from escalate.testing._server import ProviderServer

LIMIT, FOLDS = 60, 3


@pytest.fixture(scope="module")
def learning() -> GSM8KLearning:
    return learn_gsm8k(limit=LIMIT, folds=FOLDS)


def test_every_question_is_tested_once_by_a_gate_that_never_saw_it(
    learning: GSM8KLearning,
) -> None:
    fold_of = learning.fold_of
    assert len(fold_of) == LIMIT and set(fold_of.values()) == set(range(FOLDS))
    for k, trained in enumerate(learning.trained):
        tested = {str(q) for q, f in fold_of.items() if f == k}
        calibrated = {str(q) for q, f in fold_of.items() if f == (k + 1) % FOLDS}
        learned_from = set(trained.groups)
        assert learned_from and not learned_from & tested and not learned_from & calibrated
        assert not tested & calibrated
        assert learning.folds[k] == (len(learned_from), len(calibrated), len(tested))
    assert sum(c for _, _, c in learning.folds) == LIMIT
    learned = learning.outcome("gates + learned gate")
    assert learned.items == LIMIT and len(learned.thresholds) == FOLDS


def test_the_rows_agree_with_the_recorded_labels(learning: GSM8KLearning) -> None:
    problems = sample(LIMIT)
    cheap_right = [final_answer(p.cheap_response) == p.gold for p in problems]
    strong_right = [final_answer(p.strong_response) == p.gold for p in problems]
    assert learning.outcome("Mixtral alone").correct == sum(cheap_right)
    assert learning.outcome("GPT-4 alone").correct == sum(strong_right)
    perfect = learning.outcome("perfect cascade")
    assert perfect.correct == sum(c or s for c, s in zip(cheap_right, strong_right, strict=True))
    assert perfect.escalated == LIMIT - sum(cheap_right)
    mixtral, gpt4 = learning.outcome("Mixtral alone"), learning.outcome("GPT-4 alone")
    assert 0 < mixtral.cost_usd < perfect.cost_usd < gpt4.cost_usd
    for name in ("gates", "gates + calibrated score", "gates + learned gate"):
        outcome = learning.outcome(name)
        assert outcome.items == LIMIT and mixtral.cost_usd < outcome.cost_usd < gpt4.cost_usd
    # the learned gate only adds rejections to the demo's gates: it escalates no fewer
    assert learning.outcome("gates + learned gate").escalated >= learning.outcome("gates").escalated


def test_the_report_prints_the_split_and_every_row(learning: GSM8KLearning) -> None:
    report = learning.report()
    assert f"Held-out GSM8K questions: {LIMIT}, each tested once" in report
    assert "cost <= 50% of the strongest tier's" in report
    assert report.count("  gates + learned gate: ") == 1
    for o in learning.outcomes:
        line = next(line for line in report.splitlines() if line.startswith(o.name + " "))
        assert f"{o.accuracy:.1%}" in line and f"{o.cost_usd:.4f}" in line


def test_the_learned_score_is_on_the_receipt(learning: GSM8KLearning) -> None:
    scorer = learning.final.scorer
    # a question whose Mixtral answer the demo's gates pass, so the learned gate judges it
    problem = next(
        p
        for p in sample(LIMIT)
        if has_answer_line(p.cheap_response) and not arithmetic_errors(p.cheap_response)
    )
    with ProviderServer() as server:
        serve_recorded(server, [problem])
        gate = learned_gate(scorer, 1.01, name=LEARNED)  # above any score: always escalates
        solve = build_solver([cheap_tier(server, gates=[*CHEAP_GATES, gate]), strong_tier(server)])
        receipt = receipt_of(solve(problem.question))
    first = receipt.attempts[0]
    assert first.raw_output is not None
    expected = scorer.score(few_shot_prompt(problem.question), first.raw_output)
    assert first.gate == LEARNED and first.trigger == "gate"
    assert first.scores[LEARNED] == pytest.approx(expected)
    assert receipt.escalated and receipt.answered_by == "gpt-4"


def test_learn_gsm8k_command_writes_a_model_that_loads(tmp_path: Path) -> None:
    out = io.StringIO()
    path = tmp_path / "gsm8k-gate.json"
    with redirect_stdout(out):
        status = main(["learn", "--gsm8k", "--limit", "45", "--folds", "3", "--quiet",
                       "--out", str(path)])  # fmt: skip
    text = out.getvalue()
    assert status == 0 and "Held-out GSM8K questions: 45" in text and "perfect cascade" in text
    with pytest.raises(ValueError, match="extra"):
        Scorer.load(path)
    scorer = Scorer.load(path, extra=gsm8k_features)
    assert json.loads(path.read_text())["format"] == 1
    assert scorer.features.to_json() == FEATURES.to_json()
    problem = sample(45)[0]
    score = scorer.score(few_shot_prompt(problem.question), problem.cheap_response)
    assert 0.0 < score < 1.0


def test_solution_features_read_how_the_question_is_used() -> None:
    question = "Ann has 12 apples and buys 5 bags of 3 apples each. How many apples now?"
    full = "She buys 5 * 3 = <<5*3=15>>15 apples.\nShe has 12 + 15 = <<12+15=27>>27.\n#### 27"
    skipped = "She buys 5 * 3 = <<5*3=15>>15 apples.\n#### 15"
    made_up = "She buys 5 * 9 = <<5*9=45>>45 apples.\n12 + 45 = <<12+45=57>>57\n#### 57"
    dead_end = "5 * 3 = <<5*3=15>>15\n12 * 2 = <<12*2=24>>24\n12 + 15 = <<12+15=27>>27\n#### 27"
    f = solution_features(question, full)
    assert f["unused"] == 0 and f["alien"] == 0 and f["dead"] == 0 and f["last_is_answer"] == 1
    assert f["answer_line"] == 1 and f["errors"] == 0
    assert solution_features(question, skipped)["unused"] == 1  # the 12 apples
    assert solution_features(question, made_up)["alien"] > 0  # a 9 the question never gave
    assert solution_features(question, dead_end)["dead"] == 1  # 24, never used
    wrong = solution_features(question, "12 + 15 = <<12+15=28>>28\n#### 28")
    assert wrong["errors"] == 1
    as_json = json.dumps({"reasoning": full, "answer": "27"})
    assert gsm8k_features(few_shot_prompt(question), as_json) == f
