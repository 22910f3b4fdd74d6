"""Calibrating the gates that ask the tier for more (a consistency gate's samples, an asked
confidence's follow-up) through the real SDKs and the local server: the engine samples and
asks under collect, the scores are read from the answer's own attempt and vary, the cost of
a call counts every sample, and one collection at the largest n replays every smaller n."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from escalate import Tier, escalating
from escalate.calibrate import Item, analyse, calibrate, collect
from escalate.gates import asked_confidence, consistency
from escalate.testing._server import Choice, ProviderServer, Reply, Request

from ..conftest import KEY

CHEAP, STRONG = "gpt-4o-mini", "claude-sonnet-4-5"


class Solved(BaseModel):
    value: int


# question -> the cheap tier's samples (its first five); the right value is in the question.
SAMPLES: dict[str, list[int]] = {
    "q1": [1, 1, 1, 1, 1],  # easy: all agree, right
    "q2": [2, 2, 7, 2, 2],  # 4 of 5, right
    "q3": [0, 0, 0, 3, 3],  # 3 of 5 at n=5, wrong; 2 of 3 wrong at n=3
    "q4": [4, 9, 8, 4, 7],  # 2 of 5, right; at n=3: 1 each, the earliest (4) kept
    "q5": [5, 0, 0, 5, 5],  # 3 of 5 right; at n=3 the majority is 0: wrong
}
ITEMS = [Item(args=(q,), expected=int(q[1:]), id=q) for q in SAMPLES]


def _question(request: Request) -> str:
    return request.last_user_text.rpartition(": ")[2]


@pytest.fixture
def sampled(server: ProviderServer) -> ProviderServer:
    drawn: dict[str, int] = {}

    def cheap(request: Request) -> Reply:
        values = SAMPLES[_question(request)]
        if request.n > 1:
            return Reply(choices=[Choice(data={"value": v}) for v in values[: request.n]])
        q = _question(request)
        index = drawn.get(q, 0)
        drawn[q] = index + 1
        return Reply(data={"value": values[index % len(values)]})

    server.respond(CHEAP, cheap)
    server.respond(STRONG, lambda request: Reply(data={"value": int(_question(request)[1:])}))
    return server


def _solver(server: ProviderServer, gate: Any) -> Any:
    tiers = [
        Tier(f"openai/{CHEAP}", base_url=server.openai_base_url, api_key=KEY, gates=[gate]),
        Tier(f"anthropic/{STRONG}", base_url=server.anthropic_base_url, api_key=KEY),
    ]

    @escalating(tiers=tiers, response_model=Solved)
    def solve(question: str) -> str:
        return f"Solve: {question}"

    return solve


def test_calibrating_consistency_in_one_request(sampled: ProviderServer) -> None:
    solve = _solver(sampled, consistency(5, field="value", min_agreement=0.9))
    observed = collect(solve, ITEMS, gate="consistency", expected_field="value")

    cheap = [runs[0] for runs in observed.runs]
    assert [run.score for run in cheap] == [1.0, 0.8, 0.6, 0.4, 0.6]  # they vary
    assert [run.correct for run in cheap] == [True, True, False, True, True]
    assert [r.body["n"] for r in sampled.requests_for(CHEAP)] == [5] * 5  # one request each
    # The cost of a call is the whole request, every choice's output in it.
    single = collect(_solver(sampled, consistency(2, field="value")), ITEMS[:1], gate="consistency")
    assert cheap[0].cost_usd > single.runs[0][0].cost_usd
    assert cheap[0].cost_at[-1] == cheap[0].cost_usd
    assert cheap[0].cost_at[0] < cheap[0].cost_at[2] < cheap[0].cost_at[4]
    table = analyse(observed)
    assert len({row.escalated for row in table.rows}) > 2  # more than never and always

    # One collection replays n=3 without calling a model again.
    before = len(sampled.requests)
    at3 = observed.at_samples(3)
    assert len(sampled.requests) == before
    three = [runs[0] for runs in at3.runs]
    assert [run.score for run in three] == [
        1.0,
        pytest.approx(2 / 3),
        1.0,
        pytest.approx(1 / 3),
        pytest.approx(2 / 3),
    ]
    assert [run.correct for run in three] == [True, True, False, True, False]
    assert all(a.cost_usd < b.cost_usd for a, b in zip(three, cheap, strict=True))
    assert analyse(at3).rows
    again = type(observed).from_dict(observed.to_dict())
    assert again == observed
    with pytest.raises(ValueError, match="at least that large"):
        observed.at_samples(7)


def test_calibrating_consistency_with_separate_samples_counts_each(
    sampled: ProviderServer,
) -> None:
    gate = consistency(5, field="value", one_request=False, stop_early=True)
    observed = collect(_solver(sampled, gate), ITEMS, gate="consistency", expected_field="value")
    cheap = [runs[0] for runs in observed.runs]
    # Every sample is drawn under calibration (no early stop), each a request.
    assert len(sampled.requests_for(CHEAP)) == 25
    assert [run.votes for run in cheap][1] == ("2", "2", "7", "2", "2")
    assert [run.score for run in cheap] == [1.0, 0.8, 0.6, 0.4, 0.6]
    one = cheap[0].cost_at[0]
    assert cheap[0].cost_usd == pytest.approx(5 * one, rel=Decimal("0.05"))
    assert observed.at_samples(2).runs[0][0].cost_usd == cheap[0].cost_at[1]


def test_calibrating_asked_confidence_asks_the_follow_up(server: ProviderServer) -> None:
    sure = {"q1": 0.9, "q2": 0.2, "q3": 0.7, "q4": 0.4, "q5": 0.95}

    def cheap(request: Request) -> Reply:
        if "confidence" in request.last_user_text:
            question = next(
                m["content"] for m in request.messages if m.get("role") == "user"
            ).rpartition(": ")[2]
            return Reply(data={"confidence": sure[question]})
        return Reply(data={"value": int(_question(request)[1:])})

    server.respond(CHEAP, cheap)
    server.respond(STRONG, lambda request: Reply(data={"value": int(_question(request)[1:])}))
    solve = _solver(server, asked_confidence(0.5))
    result = calibrate(solve, ITEMS, gate="asked_confidence", expected_field="value")
    cheap_runs = [runs[0] for runs in result.observations.runs]
    assert [run.score for run in cheap_runs] == [0.9, 0.2, 0.7, 0.4, 0.95]
    assert len(server.requests_for(CHEAP)) == 10  # every answer and its follow-up
    assert all(run.votes is None for run in cheap_runs)
