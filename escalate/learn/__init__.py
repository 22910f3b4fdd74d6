"""A learned gate: a linear model of which cheap answers are right, trained on labelled
answers (an evaluation set, users' feedback, audits, escalations) and used as a gate like
any other (see ``docs/learning.md``).

- :class:`Features`: what the model reads (hashed n-grams of the prompt and the answer,
  the other gates' scores, the answer's shape, the user's own features);
- :class:`Example`, :func:`train` -> :class:`Trained`: a group-aware cross-validation and a
  final fit (scikit-learn's logistic regression: the ``learn`` extra);
- :class:`Scorer`: the model, scored in pure Python, saved and loaded as JSON (no pickle);
- :func:`learned_gate`: the scorer as a calibratable score gate;
- :func:`labels_from_receipts`, :func:`labels_from_store`: labels from receipts;
  :func:`example_of`: one receipt's cheap answer, labelled by an evaluation set.

``import escalate`` does not import this package; this package imports scikit-learn and
numpy only inside :func:`train`.
"""

from __future__ import annotations

from escalate.learn._features import Extra, Features, extra_name
from escalate.learn._gate import answer_text, learned_gate, prompt_text
from escalate.learn._labels import (
    Key,
    cheapest_tier,
    example_of,
    labels_from_receipts,
    labels_from_store,
)
from escalate.learn._model import FORMAT, Scorer
from escalate.learn._train import Example, Fold, Trained, auc, group_folds, train

__all__ = [
    "FORMAT",
    "Example",
    "Extra",
    "Features",
    "Fold",
    "Key",
    "Scorer",
    "Trained",
    "answer_text",
    "auc",
    "cheapest_tier",
    "example_of",
    "extra_name",
    "group_folds",
    "labels_from_receipts",
    "labels_from_store",
    "learned_gate",
    "prompt_text",
    "train",
]
