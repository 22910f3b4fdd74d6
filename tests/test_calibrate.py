"""Calibration: observations gathered through the real SDKs and the local server, the sweep
of thresholds checked against real replays of the cascade, picking by objective, the
break-even, the files it writes, the plot, the command line and the GSM8K worked example."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from escalate import Tier, escalating, receipt_of
from escalate.calibrate import (
    Calibration,
    GSM8KResult,
    Item,
    NoThresholdMeets,
    Objective,
    Observations,
    TierRun,
    analyse,
    break_even_rate,
    calibrate,
    calibrate_gsm8k,
    collect,
    load_items,
    replay,
    save_threshold,
    score_gate,
    solution_score,
    threshold,
)
from escalate.cli import main
from escalate.demo.answers import final_answer
from escalate.gates import GateContext, Rejected
from escalate.testing._server import ProviderServer, Reply, Request

from .conftest import KEY

CHEAP, STRONG = "gpt-4o-mini", "claude-sonnet-4-5"


class Answer(BaseModel):
    value: int
    confidence: float


# question -> (the cheap tier's answer, the strong tier's answer); the right value is the
# number in the question. Scores are the cheap tier's confidence.
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "q1": ({"value": 1, "confidence": 0.95}, {"value": 1, "confidence": 0.99}),  # right, sure
    "q2": ({"value": 2, "confidence": 0.6}, {"value": 2, "confidence": 0.99}),  # right, unsure
    "q3": ({"value": 0, "confidence": 0.9}, {"value": 3, "confidence": 0.99}),  # wrong, sure
    "q4": ({"value": 0, "confidence": 0.3}, {"value": 9, "confidence": 0.99}),  # both wrong
    "q5": ({"value": "five", "confidence": 0.99}, {"value": 5, "confidence": 0.99}),  # invalid
    "q6": ({"value": 6, "confidence": 0.8}, {"value": 6, "confidence": 0.99}),  # right, unsure
}
ITEMS = [Item(args=(q,), expected=int(q[1:]), id=q) for q in CASES]


def confidence(answer: Answer, context: GateContext) -> float:
    return answer.confidence


def not_zero(answer: Answer, context: GateContext) -> None:
    """Another gate, after the calibrated one: its rejections do not depend on the threshold."""
    if answer.value < 0:
        raise Rejected("negative")


@pytest.fixture
def served(server: ProviderServer) -> ProviderServer:
    def answer(strong: bool) -> Callable[[Request], Reply]:
        def reply(request: Request) -> Reply:
            question = request.last_user_text.rpartition(": ")[2]
            return Reply(data=CASES[question][strong])

        return reply

    server.respond(CHEAP, answer(False))
    server.respond(STRONG, answer(True))
    return server


def make_solver(
    server: ProviderServer, at: float = 0.5, *, is_async: bool = False
) -> Callable[..., Any]:
    tiers = [
        Tier(
            f"openai/{CHEAP}",
            base_url=server.openai_base_url,
            api_key=KEY,
            gates=[score_gate(confidence, at, name="confidence"), not_zero],
        ),
        Tier(f"anthropic/{STRONG}", base_url=server.anthropic_base_url, api_key=KEY),
    ]
    if is_async:

        async def solve_async(question: str) -> str:
            return f"Answer the question: {question}"

        return escalating(tiers=tiers, response_model=Answer)(solve_async)

    def solve(question: str) -> str:
        return f"Answer the question: {question}"

    return escalating(tiers=tiers, response_model=Answer)(solve)


@pytest.fixture
def observed(served: ProviderServer) -> Observations:
    return collect(make_solver(served), ITEMS, gate="confidence", expected_field="value")


# --- observations and the sweep, through the real SDKs ---------------------------------------


def test_collect_runs_each_tier_alone_and_scores_with_the_threshold_disabled(
    served: ProviderServer, observed: Observations
) -> None:
    assert observed.tiers == (f"openai/{CHEAP}", f"anthropic/{STRONG}")
    assert observed.gated == (True, False)
    assert len(served.requests_for(CHEAP)) == len(served.requests_for(STRONG)) == len(ITEMS)
    cheap = {item: runs[0] for item, runs in zip(observed.items, observed.runs, strict=True)}
    strong = {item: runs[1] for item, runs in zip(observed.items, observed.runs, strict=True)}
    # The solver was built with threshold 0.5, yet q4's 0.3 is recorded and q4 not refused.
    assert {q: run.score for q, run in cheap.items()} == {
        "q1": 0.95,
        "q2": 0.6,
        "q3": 0.9,
        "q4": 0.3,
        "q5": None,
        "q6": 0.8,
    }
    assert cheap["q4"].blocked is None and cheap["q4"].answered
    assert cheap["q5"].blocked is not None and "value" in cheap["q5"].blocked
    assert not cheap["q5"].answered and not cheap["q5"].correct
    assert [q for q, run in cheap.items() if run.correct] == ["q1", "q2", "q6"]
    assert [q for q, run in strong.items() if not run.correct] == ["q4"]
    assert all(run.cost_usd > 0 and run.cost_known for runs in observed.runs for run in runs)
    assert all(run.score is None for run in strong.values())


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


def test_every_row_matches_a_replay_of_the_real_cascade(
    served: ProviderServer, observed: Observations
) -> None:
    result = analyse(observed)
    solve = make_solver(served)
    for row in result.rows:
        # The gate emulated at the row's threshold, through the engine ...
        emulated = replay(
            solve, ITEMS, expected_field="value", gate="confidence", threshold=row.threshold
        )
        assert emulated.mismatches(row) == [], row.label
        # ... and the function rebuilt with its own gate at that threshold.
        rebuilt = replay(make_solver(served, row.threshold), ITEMS, expected_field="value")
        assert rebuilt.mismatches(row) == [], row.label
        assert (rebuilt.accuracy, rebuilt.escalation_rate) == (row.accuracy, row.escalation_rate)
        assert rebuilt.cost_per_call_usd == row.cost_per_call_usd


def test_an_async_function_gives_the_same_observations(
    served: ProviderServer, observed: Observations
) -> None:
    solve = make_solver(served, is_async=True)
    again = collect(solve, ITEMS, gate="confidence", expected_field="value", concurrency=3)
    assert again.runs == observed.runs
    checked = replay(solve, ITEMS, expected_field="value", gate="confidence", threshold=0.95)
    assert checked.mismatches(analyse(again).row_at(0.95)) == []


def test_a_grader_and_whole_answer_equality(served: ProviderServer) -> None:
    solve = make_solver(served)
    by_grader = collect(
        solve, ITEMS, gate="confidence", grade=lambda answer, item: answer.value == item.expected
    )
    whole = [
        Item(args=(q,), expected={"value": int(q[1:]), "confidence": CASES[q][0]["confidence"]})
        for q in CASES
    ]
    by_dump = collect(solve, whole, gate="confidence")
    assert [r[0].correct for r in by_grader.runs] == [True, True, False, False, False, True]
    assert [r[0].correct for r in by_dump.runs] == [True, True, False, False, False, True]


def test_configuration_mistakes_are_named(served: ProviderServer) -> None:
    solve = make_solver(served)
    with pytest.raises(ValueError, match=r"no gate named 'confidance'.*confidence, not_zero"):
        collect(solve, ITEMS, gate="confidance", expected_field="value")
    with pytest.raises(ValueError, match="empty"):
        collect(solve, [], gate="confidence")
    with pytest.raises(TypeError, match="not an @escalating function"):
        collect(lambda q: q, ITEMS, gate="confidence")
    reasking = escalating(
        tiers=[
            Tier(
                f"openai/{CHEAP}",
                base_url=served.openai_base_url,
                api_key=KEY,
                gates=[score_gate(confidence, 0.5, name="confidence")],
                gate_reasks=1,
            ),
            Tier(f"anthropic/{STRONG}", base_url=served.anthropic_base_url, api_key=KEY),
        ],
        response_model=Answer,
    )(lambda q: q)
    with pytest.raises(ValueError, match="gate_reasks"):
        collect(reasking, ITEMS, gate="confidence")


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


# --- picking, economics ----------------------------------------------------------------------


def test_picking_by_objective(observed: Observations) -> None:
    def picked(objective: Objective) -> str:
        row = analyse(observed, objective).picked
        assert row is not None
        return row.label

    # Default: the most accurate threshold costing no more than the strongest tier alone.
    assert picked(Objective()) == "0.95"
    assert picked(Objective(min_accuracy=0.8)) == "0.95"
    assert picked(Objective(min_accuracy=0.6)) == "0.3"  # the cheapest that reaches it
    assert picked(Objective(min_accuracy_of_strongest=0.8)) == "0.3"  # 0.8 * 5/6
    assert picked(Objective(max_escalation_rate=0.5)) == "0.3"  # ties on accuracy: cheapest
    rows = {row.label: row for row in analyse(observed).rows}
    budget = rows["0.95"].cost_per_call_usd
    assert picked(Objective(max_cost_per_call_usd=budget)) == "0.95"
    assert picked(Objective(max_cost_per_call_usd=budget - Decimal("1e-9"))) == "0.3"
    unmet = analyse(observed, Objective(min_accuracy=0.9))
    assert unmet.picked is None and unmet.unmet is not None
    assert "no threshold meets" in unmet.unmet and "strongest tier alone" in unmet.unmet
    with pytest.raises(NoThresholdMeets):
        _ = unmet.threshold
    with pytest.raises(ValueError, match="min_accuracy"):
        Objective(min_accuracy=-1)


def _uniform(scores: list[float], cheap: str = "1", strong: str = "10") -> Observations:
    runs = tuple(
        (
            TierRun("cheap", True, True, Decimal(cheap), score),
            TierRun("strong", True, True, Decimal(strong), None),
        )
        for score in scores
    )
    return Observations(
        "solve",
        "g",
        ("cheap", "strong"),
        (True, False),
        "raise",
        tuple(str(i) for i in range(len(scores))),
        runs,
    )


def test_break_even_escalation_rate() -> None:
    assert break_even_rate(Decimal(1), Decimal(10)) == pytest.approx(0.9)
    assert break_even_rate(Decimal(1), Decimal(0)) is None
    result = analyse(_uniform([i / 20 for i in range(20)]))
    rate = result.economics.break_even_escalation_rate
    assert rate == pytest.approx(0.9)
    for row in result.rows:
        # With uniform costs the cascade costs more than the strong tier exactly past it.
        assert (row.cost_usd > row.strongest_cost_usd) == (row.escalation_rate > rate + 1e-9)
    text = " ".join(result.table().split())
    assert "Break-even escalation rate: 1 - 1000.000 / 10000.000 = 90.0%" in text


def test_when_unmet_best_returns_the_refused_answer() -> None:
    base = _uniform([0.2, 0.9])
    # Item 0: the cheap answer scores below 0.5; the strong one, right, is refused by a gate.
    refused = (base.runs[0][0], TierRun("strong", True, True, Decimal(10), None, blocked="x"))
    runs = (refused, base.runs[1])
    strict = analyse(dataclasses.replace(base, runs=runs, when_unmet="raise")).row_at(0.5)
    best = analyse(dataclasses.replace(base, runs=runs, when_unmet="best_effort")).row_at(0.5)
    assert (strict.failed, strict.correct, strict.escalated) == (1, 1, 1)
    # Best effort returns the latest answer a gate refused: the strong one.
    assert (best.failed, best.correct, best.escalated) == (0, 2, 1)
    assert strict.cost_usd == best.cost_usd == Decimal(1 + 10 + 1)


# --- files -------------------------------------------------------------------------------


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


def test_the_threshold_file_is_what_the_decorator_reads(
    observed: Observations, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "thresholds.json"
    assert threshold("solve.confidence", default=0.5, path=path) == 0.5  # no file yet
    save_threshold("other.gate", 0.25, path=path)
    result = analyse(observed)
    assert result.key == "solve.confidence"
    result.write_threshold(path)
    assert threshold("solve.confidence", default=0.5, path=path) == 0.95
    assert threshold("other.gate", default=0.5, path=path) == 0.25
    assert threshold("missing", default=0.5, path=path) == 0.5
    source = json.loads(path.read_text())["sources"]["solve.confidence"]
    assert source["items"] == 6 and "objective" in source
    monkeypatch.setenv("ESCALATE_THRESHOLDS", str(path))
    assert threshold("solve.confidence", default=0.5) == 0.95
    path.write_text('{"not": "thresholds"}')
    with pytest.raises(ValueError, match="not a thresholds file"):
        threshold("solve.confidence", default=0.5)
    with pytest.raises(ValueError, match="finite"):
        save_threshold("x", math.inf, path=tmp_path / "t.json")


def test_the_plot_is_drawn(observed: Observations, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = analyse(observed).plot(tmp_path / "plots" / "calibration.png")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


def test_without_matplotlib_the_plot_says_what_to_install(
    observed: Observations, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"pip install 'escalate\[plot\]'"):
        analyse(observed).plot(tmp_path / "calibration.png")


# --- the command line ------------------------------------------------------------------------

MODULE = """
import os
from pydantic import BaseModel
from escalate import Tier, escalating
from escalate.calibrate import score_gate


class Answer(BaseModel):
    value: int
    confidence: float


def confidence(answer, context):
    return answer.confidence


def right(answer, item):
    return answer.value == item.expected


@escalating(
    tiers=[
        Tier("openai/gpt-4o-mini", base_url=os.environ["CAL_OPENAI"], api_key="k",
             gates=[score_gate(confidence, 0.5, name="confidence")]),
        Tier("anthropic/claude-sonnet-4-5", base_url=os.environ["CAL_ANTHROPIC"], api_key="k"),
    ],
    response_model=Answer,
)
def solve(question: str) -> str:
    return f"Answer the question: {question}"
"""


@pytest.fixture
def app(served: ProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("CAL_OPENAI", served.openai_base_url)
    monkeypatch.setenv("CAL_ANTHROPIC", served.anthropic_base_url)
    monkeypatch.delenv("ESCALATE_THRESHOLDS", raising=False)
    (tmp_path / "cal_app.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    lines = [json.dumps({"input": item.args[0], "expected": item.expected}) for item in ITEMS]
    (tmp_path / "set.jsonl").write_text("\n".join(lines) + "\n")
    yield tmp_path
    sys.modules.pop("cal_app", None)


def _run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        status = main(argv)
    return status, out.getvalue()


def test_the_command_calibrates_a_function(app: Path) -> None:
    assert [i.args for i in load_items(app / "set.jsonl")] == [i.args for i in ITEMS]
    out = app / "cal"
    common = ["calibrate", "cal_app:solve", "--eval", str(app / "set.jsonl"), "--gate"]
    status, text = _run(
        [*common, "confidence", "--grader", "cal_app:right", "--out", str(out), "--replay"]
    )
    assert status == 0, text
    assert "picked ->" in text and "matches the table's row exactly" in text
    assert threshold("solve.confidence", default=0, path=out / "thresholds.json") == 0.95
    assert (out / "calibration.json").exists() and (out / "calibration.png").exists()

    # Pick again from the file, with another objective: no model is called.
    status, text = _run(
        [
            *("calibrate", "--from", str(out / "calibration.json"), "--max-escalation", "40%"),
            *("--out", str(out), "--no-plot", "--quiet"),
        ]
    )
    assert status == 0, text
    assert threshold("solve.confidence", default=0, path=out / "thresholds.json") == 0.3

    status, text = _run(
        [
            *(*common, "confidence", "--expected-field", "value", "--min-accuracy", "0.99"),
            *("--out", str(out), "--no-plot", "--quiet"),
        ]
    )
    assert status == 1 and "No threshold picked" in text


def test_the_command_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["calibrate"],
        ["calibrate", "--gsm8k", "mod:fn"],
        ["calibrate", "mod:fn"],
        ["calibrate", "--gsm8k", "--min-accuracy", "1.5"],
        ["calibrate", "mod:fn", "--limit", "3"],
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2, argv


# --- the worked example: GSM8K -------------------------------------------------------------


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


def test_receipts_of_graded_answers_are_kept(served: ProviderServer) -> None:
    seen: list[str | None] = []

    def grade(answer: Answer, item: Item) -> bool:
        seen.append(receipt_of(answer).answered_by)
        return answer.value == item.expected

    collect(make_solver(served), ITEMS[:2], gate="confidence", grade=grade)
    assert seen == [f"openai/{CHEAP}", f"anthropic/{STRONG}"] * 2
