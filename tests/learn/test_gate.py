"""The learned gate end to end, through the real SDK path: trained on labelled receipts from
a store, saved and loaded, its threshold picked by calibrate() on held-out questions (never
the ones it learned from), then used in a real escalating call whose receipt carries its
score; and the command."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

import escalate
from escalate import receipt_of
from escalate.calibrate import Item, Objective, calibrate, threshold
from escalate.cli import main
from escalate.learn import Features, Scorer, labels_from_store, learned_gate, train
from escalate.testing._server import ProviderServer

from .conftest import Answer, is_right, is_short, make_solver, question

TRAIN = range(1, 61)
HELD_OUT = range(100, 136)


def _ask(i: int) -> str:
    return question(i)


def _filed_calls(served: ProviderServer, store: str, numbers: range) -> None:
    """Calls a user made and rated: the length gate at 0 (it records, never rejects), each
    call tagged with its question, each answer rated by its user."""
    solve = make_solver(served, length_at=0.0)
    escalate.configure(store=store)
    try:
        for i in numbers:
            with escalate.options(tags={"question": _ask(i)}):
                result = solve(_ask(i))
            escalate.feedback(result, good=result.value == i)
        assert escalate.flush()
    finally:
        escalate.configure(store=None)


@pytest.fixture
def model(served: ProviderServer, tmp_path: Path) -> Path:
    store = f"sqlite:///{tmp_path / 'receipts.db'}"
    _filed_calls(served, store, TRAIN)
    examples = labels_from_store(
        store, function="solve", prompt_of=lambda receipt: receipt.tags["question"]
    )
    assert len(examples) == len(TRAIN) and {e.source for e in examples} == {"feedback"}
    assert [e.label for e in examples] == [is_right(i) for i in TRAIN]
    trained = train(examples, features=Features(scores=("length",)), folds=5)
    assert trained.cv_auc is not None and trained.cv_auc > 0.9
    return trained.scorer.save(tmp_path / "model.json")


def test_a_learned_gate_calibrated_on_held_out_items_gates_a_real_call(
    served: ProviderServer, model: Path, tmp_path: Path
) -> None:
    thresholds = tmp_path / "thresholds.json"
    learned_from = {
        e.prompt
        for e in labels_from_store(
            f"sqlite:///{tmp_path / 'receipts.db'}", prompt_of=lambda r: r.tags["question"]
        )
    }
    held_out = [Item(args=(_ask(i),), expected=i, id=str(i)) for i in HELD_OUT]
    assert learned_from.isdisjoint(item.args[0] for item in held_out)
    assert set(TRAIN).isdisjoint(HELD_OUT)

    def build() -> Callable[[str], Answer]:
        at = threshold("solve.learned", default=0.5, path=thresholds)
        gate = learned_gate(model, at, prompt_of=lambda context: str(context.args[0]))
        return make_solver(served, [gate])

    result = calibrate(
        build(),
        held_out,
        gate="learned",
        expected_field="value",
        objective=Objective(min_accuracy=0.99),
    )
    picked = result.picked
    assert picked is not None and picked.accuracy >= 0.99
    cheap, _strong = result.baselines
    assert cheap.accuracy < 0.7 and picked.escalation_rate < 0.6  # far from always escalating
    result.write_threshold(thresholds)
    assert threshold("solve.learned", default=-1, path=thresholds) == picked.threshold

    solve = build()  # the gate built again, reading the calibrated threshold
    scorer = Scorer.load(model)
    right, wrong = 101, 102
    assert is_right(right) and not is_right(wrong) and not is_short(right)
    kept = receipt_of(solve(_ask(right)))
    (attempt,) = kept.attempts
    assert kept.answered_by == "cheap" and set(attempt.scores) == {"length", "learned"}
    expected = scorer.score(_ask(right), attempt.raw_output or "", {"length": 1.0})
    assert attempt.scores["learned"] == expected >= picked.threshold
    moved = receipt_of(solve(_ask(wrong)))
    assert moved.answered_by == "strong" and moved.attempts[0].gate == "learned"
    assert moved.attempts[0].scores["learned"] < picked.threshold
    assert solve(_ask(wrong)).value == wrong


def test_the_gate_reads_the_other_gates_scores(served: ProviderServer, tmp_path: Path) -> None:
    features = Features(prompt=False, answer=False, shape=False, scores=("length",))
    (bucket,) = features.vector("", "", {"length": 1.0})
    scorer = Scorer({bucket: 4.0}, -2.0, features)  # sure when the length gate is
    solve = make_solver(served, [learned_gate(scorer, 0.5)])
    long_answer = receipt_of(solve(_ask(1))).attempts[0]
    assert long_answer.scores["learned"] == scorer.score("", "", {"length": 1.0}) > 0.8
    short = receipt_of(make_solver(served, [learned_gate(scorer, 0.5)], length_at=0)(_ask(5)))
    assert short.attempts[0].scores["learned"] == scorer.score("", "", {"length": 0.2}) < 0.5
    assert short.attempts[0].gate == "learned"


async def test_the_async_face_hands_the_scores_on_too(served: ProviderServer) -> None:
    features = Features(prompt=False, answer=False, shape=False, scores=("length",))
    (bucket,) = features.vector("", "", {"length": 1.0})
    scorer = Scorer({bucket: 4.0}, -2.0, features)
    solve = make_solver(served, [learned_gate(scorer, 0.5)], is_async=True)
    receipt = receipt_of(await solve(_ask(1)))
    assert receipt.attempts[0].scores["learned"] == scorer.score("", "", {"length": 1.0})


def test_learned_gate_arguments() -> None:
    scorer = Scorer({}, 0.0)
    gate = learned_gate(scorer, 0.25, name="mine")
    assert gate.name == "mine" and gate.threshold == 0.25
    with pytest.raises(ValueError, match="extra= is for loading"):
        learned_gate(scorer, 0.5, extra=lambda p, a: {})


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


def test_the_learn_command(served: ProviderServer, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'receipts.db'}"
    _filed_calls(served, store, TRAIN)
    out = tmp_path / "model.json"
    status, text, _ = _run(
        [
            "learn",
            "--store",
            store,
            "--function",
            "solve",
            "--key",
            "value",
            "--out",
            str(out),
            "--prompt-tag",
            "question",
            "--folds",
            "4",
        ]
    )
    assert status == 0, text
    assert "60 labelled answers of solve" in text
    assert "60 examples in 60 groups" in text and "label sources: feedback 60" in text
    assert text.count("  fold ") == 4 and "out-of-fold AUC (pooled)" in text
    scorer = Scorer.load(out)
    assert scorer.features.prompt and scorer.metadata["examples"] == 60
    assert json.loads(out.read_text())["format"] == 1
    status, text, _ = _run(
        ["learn", "--store", store, "--function", "nothing", "--out", str(tmp_path / "x.json")]
    )
    assert status == 1 and "cannot train" in text and "no --key" in text


def test_gsm8k_and_a_store_are_refused_together() -> None:
    # the worked example itself: tests/test_demo_learning.py
    with pytest.raises(SystemExit):
        _run(["learn", "--gsm8k", "--store", "x.db"])
