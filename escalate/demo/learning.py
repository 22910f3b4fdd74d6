"""The worked example of a learned gate: Mixtral -> GPT-4 on GSM8K's real recorded
answers, with the demo's gates plus a gate learned from labelled answers
(``escalate learn --gsm8k``; see ``docs/learning.md``).

The split is honest, by question. The questions are dealt into ``folds`` groups. For each
fold in turn it is the *test* fold, the next one the *calibration* fold and the rest the
*training* folds: the gate is trained on the training folds' labelled Mixtral answers, its
threshold picked by :func:`escalate.calibrate.calibrate` on the calibration fold (through
the real SDK path), and the cascade at that threshold replayed on the test fold. Every
question is tested once, by a gate that neither learned from it nor was calibrated on it;
the held-out figures are the test folds' sums. Everything runs through the local provider
server, the real openai SDK and instructor: the learned gate scores the raw output the
server returned, exactly as it would a live model's.

The other rows of the table are run on the same questions: Mixtral alone, GPT-4 alone,
the demo's gates, those gates plus the calibrated :func:`~escalate.demo.calibration.gsm8k_score`
(calibrated the same way, fold by fold) and the perfect cascade (Mixtral's answer when it
is right, else GPT-4's, priced from the same receipts).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from escalate import receipt_of
from escalate.calibrate import Item, Objective, calibrate, replay, score_gate
from escalate.demo import (
    CHEAP_GATES,
    Solution,
    build_solver,
    cheap_tier,
    sample,
    serve_recorded,
    strong_tier,
)
from escalate.demo.calibration import GSM8K_GATE, gsm8k_score
from escalate.demo.features import gsm8k_features
from escalate.demo.gsm8k import Problem, few_shot_prompt
from escalate.learn import Example, Features, Trained, example_of, group_folds, learned_gate, train
from escalate.testing._server import ProviderServer

__all__ = ["FEATURES", "GSM8KLearning", "Outcome", "learn_gsm8k"]

LEARNED = "learned"
"""The learned gate's name (its score is ``attempt.scores["learned"]``)."""

FEATURES = Features(prompt=False, extra=gsm8k_features)
"""What the gate reads: the answer's word n-grams and shape, and the solution's mechanical
signals (:mod:`escalate.demo.features`, which read the question from the prompt). The
prompt's own n-grams are off: the 8-shot prefix is the same in every prompt."""

DEFAULT_OBJECTIVE = Objective(max_cost_of_strongest=0.5)
"""The threshold the calibration picks: the most accurate with a cost of at most half of
GPT-4's alone (the aim's budget), on the calibration fold."""


@dataclass
class Outcome:
    """One way of answering, over the held-out questions."""

    name: str
    items: int = 0
    correct: int = 0
    escalated: int = 0
    cost_usd: Decimal = Decimal(0)
    thresholds: list[float] = field(default_factory=list)
    """The threshold picked on each fold's calibration questions (calibrated rows)."""

    def add(self, items: int, correct: int, escalated: int, cost: Decimal) -> None:
        self.items += items
        self.correct += correct
        self.escalated += escalated
        self.cost_usd += cost

    @property
    def accuracy(self) -> float:
        return self.correct / self.items if self.items else 0.0


@dataclass(frozen=True)
class GSM8KLearning:
    """The held-out table and how it was made."""

    outcomes: tuple[Outcome, ...]
    folds: tuple[tuple[int, int, int], ...]
    """Per fold: how many training, calibration and test questions."""
    fold_of: dict[int, int]
    """Each question's fold (by its index in the dev split): fold k is tested in round k
    and calibrates round k - 1."""
    trained: tuple[Trained, ...]
    objective: Objective
    final: Trained
    """The gate trained on every question (for use elsewhere: it has no held-out figures
    of its own, and its threshold needs calibrating on other questions)."""

    def outcome(self, name: str) -> Outcome:
        return next(o for o in self.outcomes if o.name == name)

    def table(self) -> str:
        """Accuracy, share of GPT-4's accuracy, cost and share of GPT-4's cost."""
        strong = self.outcome("GPT-4 alone")
        head = f"{'':<34}{'accuracy':>9}{'of GPT-4':>10}{'cost (USD)':>12}{'of GPT-4':>10}"
        lines = [head + f"{'escalated':>11}"]
        for o in self.outcomes:
            share = o.accuracy / strong.accuracy if strong.accuracy else 0.0
            cost_share = float(o.cost_usd / strong.cost_usd) if strong.cost_usd else 0.0
            escalated = f"{o.escalated / o.items:.1%}" if o.items else ""
            lines.append(
                f"{o.name:<34}{o.accuracy:>9.1%}{share:>10.1%}{o.cost_usd:>12.4f}"
                f"{cost_share:>10.1%}{escalated:>11}"
            )
        return "\n".join(lines)

    def report(self) -> str:
        learned = self.outcome("gates + learned gate")
        split = "; ".join(
            f"fold {i + 1}: train {a}, calibrate {b}, test {c}"
            for i, (a, b, c) in enumerate(self.folds)
        )
        auc = [t.cv_auc for t in self.trained if t.cv_auc is not None]
        return "\n".join(
            [
                f"Held-out GSM8K questions: {learned.items}, each tested once ({split}).",
                f"Thresholds picked on each calibration fold ({self.objective.describe()}):",
                *(
                    f"  {o.name}: " + ", ".join(map(_threshold_text, o.thresholds))
                    for o in self.outcomes
                    if o.thresholds
                ),
                "Training cross-validation AUC (out-of-fold, by question): "
                + ", ".join(f"{a:.3f}" for a in auc)
                + ".",
                "",
                self.table(),
                "",
                "Accuracy: the returned answer equals GSM8K's gold answer. Costs: measured from "
                "the receipts (tokens counted with cl100k; GPT-4 priced by genai-prices, Mixtral "
                "at Mistral's list price). The perfect cascade is a bound no gate reaches: it "
                "knows which answers are right.",
            ]
        )


def _threshold_text(at: float) -> str:
    # No threshold met the objective on that fold's calibration questions: the cascade
    # escalates every answer the gate scores, the one way left to meet it.
    return "none met (all escalate)" if math.isinf(at) else f"{at:.3f}"


def _items(problems: Sequence[Problem]) -> list[Item]:
    return [Item(args=(p.question,), expected=p.gold, id=str(p.index)) for p in problems]


def _alone(
    server: ProviderServer, problems: Sequence[Problem], outcomes: dict[str, Outcome]
) -> dict[int, Example]:
    """Each model alone on every question, once, through the real SDK path: the rows of
    Mixtral alone, GPT-4 alone and the perfect cascade (Mixtral's answer where it is right,
    else GPT-4's, priced from the same receipts), and the training data: Mixtral's answers
    labelled by the gold answers, as a user would gather them from an evaluation set."""
    cheap = build_solver([cheap_tier(server, gates=())])
    strong = build_solver([strong_tier(server)])
    examples = {}
    for problem in problems:
        first, second = cheap(problem.question), strong(problem.question)
        right, strong_right = first.answer == problem.gold, second.answer == problem.gold
        cost, strong_cost = receipt_of(first).known_cost_usd, receipt_of(second).known_cost_usd
        outcomes["Mixtral alone"].add(1, int(right), 0, cost)
        outcomes["GPT-4 alone"].add(1, int(strong_right), 0, strong_cost)
        if right:
            outcomes["perfect cascade"].add(1, 1, 0, cost)
        else:
            outcomes["perfect cascade"].add(1, int(strong_right), 1, cost + strong_cost)
        example = example_of(
            receipt_of(first),
            label=right,
            prompt=few_shot_prompt(problem.question),
            group=str(problem.index),
        )
        if example is not None:
            examples[problem.index] = example
    return examples


def _measure(solver: Callable[[str], Solution], problems: Sequence[Problem], into: Outcome) -> None:
    result = replay(solver, _items(problems), expected_field="answer")
    into.add(result.items, result.correct, result.escalated, result.cost_usd)


def _held_out(
    server: ProviderServer,
    gate: Callable[[float], Any],
    name: str,
    calibration: Sequence[Problem],
    test: Sequence[Problem],
    objective: Objective,
    into: Outcome,
) -> None:
    """Pick ``gate``'s threshold on the calibration questions, then run the cascade at it
    on the test questions."""

    def solver(at: float) -> Callable[[str], Solution]:
        return build_solver(
            [cheap_tier(server, gates=[*CHEAP_GATES, gate(at)]), strong_tier(server)]
        )

    # The threshold the function is built with does not matter: calibration disables it.
    picked = calibrate(
        solver(0.5), _items(calibration), gate=name, expected_field="answer", objective=objective
    ).picked
    at = picked.threshold if picked is not None else float("inf")  # nothing meets: all escalate
    into.thresholds.append(at)
    _measure(solver(at), test, into)


def learn_gsm8k(
    *,
    folds: int = 5,
    seed: int = 0,
    limit: int | None = None,
    objective: Objective | None = None,
    C: float = 1.0,
    progress: Callable[[str], None] | None = None,
) -> GSM8KLearning:
    """Train, calibrate and test a learned gate on the shared GSM8K data, fold by fold
    (see the module's docstring); ``limit`` questions spread over the 654 uncontaminated
    dev questions (all by default)."""
    if folds < 3:
        raise ValueError("learn_gsm8k needs at least 3 folds: train, calibrate and test")
    objective = objective if objective is not None else DEFAULT_OBJECTIVE
    say = progress or (lambda _text: None)
    problems = sample(limit)
    fold_of = dict(
        zip(
            (p.index for p in problems),
            group_folds([str(p.index) for p in problems], folds, seed=seed),
            strict=True,
        )
    )
    names = ("Mixtral alone", "GPT-4 alone", "gates", "gates + calibrated score",
             "gates + learned gate", "perfect cascade")  # fmt: skip
    outcomes = {name: Outcome(name) for name in names}
    splits, trained_all = [], []
    with ProviderServer() as server:
        serve_recorded(server, problems)
        say("each model alone; Mixtral's answers labelled by the gold answers")
        examples = _alone(server, problems, outcomes)
        _measure(
            build_solver([cheap_tier(server), strong_tier(server)]), problems, outcomes[names[2]]
        )
        for fold in range(folds):
            test = [p for p in problems if fold_of[p.index] == fold]
            calibration = [p for p in problems if fold_of[p.index] == (fold + 1) % folds]
            training = [
                examples[p.index]
                for p in problems
                if fold_of[p.index] not in (fold, (fold + 1) % folds) and p.index in examples
            ]
            splits.append((len(training), len(calibration), len(test)))
            say(f"fold {fold + 1}/{folds}: train on {len(training)}, calibrate on "
                f"{len(calibration)}, test on {len(test)}")  # fmt: skip
            trained = train(training, features=FEATURES, C=C, seed=seed)
            trained_all.append(trained)
            _held_out(
                server,
                functools.partial(learned_gate, trained.scorer, name=LEARNED),
                LEARNED, calibration, test, objective, outcomes[names[4]],
            )  # fmt: skip
            _held_out(
                server,
                functools.partial(score_gate, gsm8k_score, name=GSM8K_GATE),
                GSM8K_GATE, calibration, test, objective, outcomes[names[3]],
            )  # fmt: skip
        final = train(list(examples.values()), features=FEATURES, C=C, seed=seed)
    return GSM8KLearning(
        tuple(outcomes[n] for n in names),
        tuple(splits),
        fold_of,
        tuple(trained_all),
        objective,
        final,
    )
