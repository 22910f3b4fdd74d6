"""Collecting observations: each tier alone on each item through the real SDKs, the
calibrated gate's threshold disabled, graded three ways, sync and async alike."""

from __future__ import annotations

import pytest

from escalate import Tier, escalating, receipt_of
from escalate.calibrate import Item, Observations, analyse, collect, replay, score_gate
from escalate.testing._server import ProviderServer

from ..conftest import KEY
from .conftest import CASES, CHEAP, ITEMS, STRONG, Answer, confidence, make_solver


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


def test_receipts_of_graded_answers_are_kept(served: ProviderServer) -> None:
    seen: list[str | None] = []

    def grade(answer: Answer, item: Item) -> bool:
        seen.append(receipt_of(answer).answered_by)
        return answer.value == item.expected

    collect(make_solver(served), ITEMS[:2], gate="confidence", grade=grade)
    assert seen == [f"openai/{CHEAP}", f"anthropic/{STRONG}"] * 2
