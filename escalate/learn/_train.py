"""Training a learned gate: labelled :class:`Example` s to a :class:`Scorer`, with an
honest estimate of how well it tells right cheap answers from wrong ones.

:func:`train` fits scikit-learn's ``LogisticRegression`` (lbfgs) on a scipy sparse matrix
of :meth:`Features.vector` s. Before the final fit on every example, a group-aware K-fold
cross-validation scores each example by a model that never saw its group (``Example.group``:
all the items of one question on one side of every split), giving out-of-fold scores and
their AUC. scikit-learn, numpy and scipy are imported inside :func:`train` only.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from escalate.learn._features import Features
from escalate.learn._model import Scorer

__all__ = ["Example", "Fold", "Trained", "auc", "group_folds", "train"]


@dataclass(frozen=True)
class Example:
    """One labelled answer of the cheap tier."""

    prompt: str
    """The prompt it answered ("" when unknown: the answer's own features only)."""
    answer: str
    """The answer text as the model produced it (``attempt.raw_output``)."""
    label: bool
    """True: the cheap answer was right."""
    scores: Mapping[str, float] = field(default_factory=dict)
    """The other gates' scores of this answer."""
    group: str | None = None
    """Examples of one group (one question) are kept on one side of every split; ``None``:
    grouped by prompt, or alone when the prompt is empty."""
    source: str = "eval"
    """Where the label came from: ``eval``, ``feedback``, ``audit`` or ``escalation``."""


@dataclass(frozen=True)
class Fold:
    """One fold of the cross-validation: the examples held out and their AUC."""

    index: int
    examples: int
    groups: int
    positives: int
    auc: float | None
    """``None`` when the fold holds one class only."""


@dataclass(frozen=True)
class Trained:
    """What :func:`train` gives: the scorer fitted on every example, and the
    cross-validation that says how good it is on groups it did not see."""

    scorer: Scorer
    oof_scores: tuple[float, ...]
    """Each example's score by the fold model that did not see its group (examples' order)."""
    cv_auc: float | None
    """The AUC of the out-of-fold scores, pooled (``None`` with one class)."""
    folds: tuple[Fold, ...]
    fold_of: tuple[int, ...]
    """Which fold held each example out (examples' order)."""
    groups: tuple[str, ...]
    """Each example's group, as used for the split (examples' order)."""
    labels: tuple[bool, ...]
    sources: Mapping[str, int]

    def describe(self) -> str:
        """The split and the cross-validation, printed."""
        n = len(self.labels)
        positives = sum(self.labels)
        lines = [
            f"{n} examples in {len(set(self.groups))} groups; {positives} right "
            f"({positives / n:.1%}), {n - positives} wrong",
            "label sources: " + ", ".join(f"{k} {v}" for k, v in sorted(self.sources.items())),
            f"{len(self.folds)}-fold cross-validation by group (no group in two folds):",
        ]
        for fold in self.folds:
            auc_text = "n/a (one class)" if fold.auc is None else f"{fold.auc:.3f}"
            lines.append(
                f"  fold {fold.index + 1}: {fold.examples} examples, {fold.groups} groups, "
                f"{fold.positives} right, AUC {auc_text}"
            )
        pooled = "n/a" if self.cv_auc is None else f"{self.cv_auc:.3f}"
        lines.append(f"out-of-fold AUC (pooled): {pooled}")
        lines.append(self.scorer.describe())
        return "\n".join(lines)


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """The area under the ROC curve: the chance a right answer scores above a wrong one
    (ties count half); ``None`` when the labels hold one class only."""
    ranked = sorted(zip(scores, labels, strict=True), key=lambda pair: pair[0])
    positives = sum(1 for _, label in ranked if label)
    negatives = len(ranked) - positives
    if not positives or not negatives:
        return None
    rank_sum = 0.0
    i = 0
    while i < len(ranked):
        j = i
        while j + 1 < len(ranked) and ranked[j + 1][0] == ranked[i][0]:
            j += 1
        mid = (i + j) / 2 + 1  # the tied block's average rank, 1-based
        rank_sum += mid * sum(1 for k in range(i, j + 1) if ranked[k][1])
        i = j + 1
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def _groups(examples: Sequence[Example]) -> list[str]:
    out = []
    for index, example in enumerate(examples):
        if example.group is not None:
            out.append(f"g:{example.group}")
        elif example.prompt:
            out.append(f"p:{example.prompt}")
        else:
            out.append(f"#{index}")
    return out


def group_folds(groups: Sequence[str], folds: int, *, seed: int = 0) -> list[int]:
    """Each example's fold: the groups shuffled (seeded), then each, largest first, given
    to the fold holding the fewest examples so far; a group never straddles two folds."""
    sizes = Counter(groups)
    order = sorted(sizes)
    random.Random(seed).shuffle(order)
    order.sort(key=lambda g: -sizes[g])  # stable: ties keep the shuffled order
    load = [0] * folds
    fold_of_group: dict[str, int] = {}
    for group in order:
        target = min(range(folds), key=lambda f: (load[f], f))
        fold_of_group[group] = target
        load[target] += sizes[group]
    return [fold_of_group[g] for g in groups]


def _matrix(vectors: Sequence[Mapping[int, float]]) -> tuple[Any, list[int]]:
    """A CSR matrix over the buckets used (columns compacted), and column -> bucket."""
    import numpy as np
    from scipy.sparse import csr_matrix

    buckets = sorted({index for vector in vectors for index in vector})
    column = {bucket: i for i, bucket in enumerate(buckets)}
    indptr, indices, data = [0], [], []
    for vector in vectors:
        for bucket, value in vector.items():
            indices.append(column[bucket])
            data.append(value)
        indptr.append(len(indices))
    shape = (len(vectors), max(1, len(buckets)))
    matrix = csr_matrix(
        (np.asarray(data, dtype=float), np.asarray(indices), np.asarray(indptr)), shape=shape
    )
    return matrix, buckets


def _fit(x: Any, y: Any, c: float, balanced: bool, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(
        C=c,
        solver="lbfgs",
        max_iter=2000,
        class_weight="balanced" if balanced else None,
        random_state=seed,
    )
    return model.fit(x, y)


def train(
    examples: Sequence[Example],
    *,
    features: Features | None = None,
    C: float = 1.0,
    folds: int = 5,
    seed: int = 0,
    balanced: bool = False,
) -> Trained:
    """Fit a learned gate on ``examples`` (needs the ``learn`` extra: scikit-learn, numpy).

    A group-aware ``folds``-fold cross-validation (:func:`group_folds`, seeded) gives every
    example an out-of-fold score and the pooled AUC; then the model is fitted on every
    example. ``balanced`` weighs the classes equally (``class_weight="balanced"``).
    ValueError with fewer than two groups or a single class.
    """
    try:
        import numpy as np
        import sklearn
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"escalate.learn.train needs scikit-learn and numpy ({error.name} is missing): "
            "pip install 'escalate[learn]'"
        ) from None
    from escalate import __version__

    features = features if features is not None else Features()
    examples = list(examples)
    labels = [bool(e.label) for e in examples]
    if len(set(labels)) < 2:
        raise ValueError(
            f"train: {len(examples)} examples, all labelled {labels[0] if labels else '-'}: "
            "a gate needs right and wrong answers to learn from"
        )
    groups = _groups(examples)
    folds = min(int(folds), len(set(groups)))
    if folds < 2:
        raise ValueError("train: cross-validation needs at least two groups of examples")
    vectors = [features.vector(e.prompt, e.answer, e.scores) for e in examples]
    x, buckets = _matrix(vectors)
    y = np.asarray(labels, dtype=int)
    fold_of = group_folds(groups, folds, seed=seed)
    oof = [0.0] * len(examples)
    results = []
    for fold in range(folds):
        test = [i for i, f in enumerate(fold_of) if f == fold]
        fit_on = [i for i, f in enumerate(fold_of) if f != fold]
        if len(set(y[fit_on].tolist())) < 2:  # one class to learn from: its base rate
            for i in test:
                oof[i] = float(y[fit_on].mean())
        else:
            model = _fit(x[fit_on], y[fit_on], C, balanced, seed)
            for i, p in zip(test, model.predict_proba(x[test])[:, 1].tolist(), strict=True):
                oof[i] = float(p)
        results.append(
            Fold(
                fold,
                len(test),
                len({groups[i] for i in test}),
                sum(labels[i] for i in test),
                auc([oof[i] for i in test], [labels[i] for i in test]),
            )
        )
    final = _fit(x, y, C, balanced, seed)
    coefficients = final.coef_[0].tolist()
    weights = {buckets[j]: float(w) for j, w in enumerate(coefficients) if w and j < len(buckets)}
    cv_auc = auc(oof, labels)
    sources = dict(sorted(Counter(e.source for e in examples).items()))
    metadata = {
        "C": float(C),
        "balanced": balanced,
        "cv_auc": cv_auc,
        "escalate_version": __version__,
        "examples": len(examples),
        "folds": folds,
        "groups": len(set(groups)),
        "positives": sum(labels),
        "seed": seed,
        "sklearn_version": sklearn.__version__,
        "sources": sources,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    scorer = Scorer(weights, float(final.intercept_[0]), features, metadata)
    return Trained(
        scorer,
        tuple(oof),
        cv_auc,
        tuple(results),
        tuple(fold_of),
        tuple(groups),
        tuple(labels),
        sources,
    )
