"""Training: a group-aware cross-validation (no group in two folds), out-of-fold scores and
their AUC, a final fit, and the split printed."""

from __future__ import annotations

import random

import pytest
from sklearn.metrics import roc_auc_score

from escalate.learn import Example, Features, auc, group_folds, train

_WORDS = tuple(
    ["apples", "pears", "boxes", "crates", "farmer", "market", "week", "friends", "sells", "buys"]
)


def _separable(questions: int = 60, per_question: int = 3, seed: int = 0) -> list[Example]:
    """Several answers per question; right ones say "checked", wrong ones "guess"; an
    unrelated gate score."""
    rng = random.Random(seed)
    out = []
    for q in range(questions):
        prompt = " ".join(rng.choice(_WORDS) for _ in range(15)) + f" question {q}"
        for _ in range(per_question):
            right = rng.random() < 0.6
            filler = " ".join(rng.choice(_WORDS) for _ in range(20))
            marker = "so I checked the total twice" if right else "so I guess it is maybe this"
            out.append(
                Example(prompt, f"{filler} {marker}", right, {"other": rng.random()}, f"q{q}")
            )
    return out


def test_a_separable_set_reaches_a_high_auc_out_of_fold() -> None:
    examples = _separable()
    trained = train(examples, folds=5, seed=3)
    assert trained.cv_auc is not None and trained.cv_auc > 0.95
    assert len(trained.oof_scores) == len(examples)
    assert all(fold.auc is not None and fold.auc > 0.9 for fold in trained.folds)
    scorer = trained.scorer
    right = [scorer.score(e.prompt, e.answer, e.scores) for e in examples if e.label]
    wrong = [scorer.score(e.prompt, e.answer, e.scores) for e in examples if not e.label]
    assert min(right) > max(wrong)


def test_no_group_straddles_two_folds() -> None:
    examples = _separable(questions=37, per_question=4)
    trained = train(examples, folds=5)
    folds_of_group: dict[str, set[int]] = {}
    for example, fold in zip(examples, trained.fold_of, strict=True):
        folds_of_group.setdefault(str(example.group), set()).add(fold)
    assert len(folds_of_group) == 37
    assert all(len(folds) == 1 for folds in folds_of_group.values())
    assert sorted(set(trained.fold_of)) == [0, 1, 2, 3, 4]
    assert sum(f.examples for f in trained.folds) == len(examples)
    assert sum(f.groups for f in trained.folds) == 37
    sizes = [f.examples for f in trained.folds]
    assert max(sizes) - min(sizes) <= 4  # one group's size at most


def test_without_a_group_examples_are_grouped_by_prompt() -> None:
    examples = [
        Example(e.prompt, e.answer, e.label, e.scores, group=None, source=e.source)
        for e in _separable(questions=20)
    ]
    trained = train(examples, folds=4)
    by_prompt: dict[str, set[int]] = {}
    for example, fold in zip(examples, trained.fold_of, strict=True):
        by_prompt.setdefault(example.prompt, set()).add(fold)
    assert all(len(folds) == 1 for folds in by_prompt.values())
    alone = [Example("", f"answer {i}", i % 2 == 0) for i in range(10)]
    assert len(set(train(alone, folds=5).groups)) == 10  # no prompt, no group: each alone


def test_the_folds_depend_on_the_seed_only() -> None:
    groups = [f"g{i // 2}" for i in range(40)]
    assert group_folds(groups, 4, seed=1) == group_folds(groups, 4, seed=1)
    assert group_folds(groups, 4, seed=1) != group_folds(groups, 4, seed=2)


def test_auc_agrees_with_scikit_learn() -> None:
    rng = random.Random(5)
    labels = [rng.random() < 0.4 for _ in range(300)]
    scores = [round(rng.random() + 0.3 * label, 1) for label in labels]  # many ties
    assert auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert auc([0.1, 0.2], [True, True]) is None


def test_the_split_is_printed() -> None:
    trained = train(_separable(questions=30), folds=3)
    text = trained.describe()
    assert "90 examples in 30 groups" in text
    assert "3-fold cross-validation by group" in text
    assert text.count("  fold ") == 3 and "out-of-fold AUC (pooled)" in text
    assert "label sources: eval 90" in text


def test_what_cannot_be_learned_is_refused() -> None:
    with pytest.raises(ValueError, match="all labelled True"):
        train([Example("q", "a", True), Example("r", "b", True)])
    with pytest.raises(ValueError, match="at least two groups"):
        train([Example("q", "a", True, group="g"), Example("q", "b", False, group="g")])


def test_the_features_travel_with_the_scorer() -> None:
    features = Features(ngrams=(1, 1), buckets=4096, scores=("other",))
    scorer = train(_separable(questions=20), features=features, folds=3).scorer
    assert scorer.features == features
    assert all(0 <= bucket < 4096 for bucket in scorer.weights)
