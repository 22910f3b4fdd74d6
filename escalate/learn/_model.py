"""A trained learned gate's model: :class:`Scorer`, a linear model over hashed features,
scored in pure Python and saved as JSON (never pickle).

The model file (``"format": 1``) holds the weights (only the nonzero ones, as
``[bucket, weight]`` pairs sorted by bucket), the intercept, the feature configuration
(:meth:`Features.to_json`) and what the model was trained on (``metadata``). It is
written with sorted keys, so one model always writes the same bytes, and floats as
Python's shortest round-trip text, so a loaded model scores exactly as the saved one did.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

from escalate.learn._features import Extra, Features

__all__ = ["FORMAT", "KIND", "Scorer"]

FORMAT = 1
"""The model file's format version; a file of any other is refused."""
KIND = "escalate.learn.Scorer"


@dataclass(frozen=True)
class Scorer:
    """``P(the cheap answer is right)`` from a linear model: ``sigmoid(intercept + w . x)``
    over :meth:`Features.vector`."""

    weights: Mapping[int, float]
    """bucket -> weight, the nonzero ones only."""
    intercept: float
    features: Features = field(default_factory=Features)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """What it was trained on: ``trained_at``, ``examples``, ``groups``, ``positives``,
    ``sources`` (label source -> count), ``cv_auc``, ``folds``, ``C``, the escalate and
    scikit-learn versions."""

    def __post_init__(self) -> None:
        weights = {int(k): float(v) for k, v in self.weights.items() if v}
        bad = [k for k in weights if not 0 <= k < self.features.buckets]
        if bad:
            raise ValueError(f"Scorer: bucket {bad[0]} is outside 0..{self.features.buckets - 1}")
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "intercept", float(self.intercept))

    def logit(
        self, prompt: str, answer_text: str, scores: Mapping[str, float] | None = None
    ) -> float:
        """``intercept + w . x``: the log-odds that the answer is right."""
        present, valued = self.features.parts(prompt, answer_text, scores)
        weight = self.weights.get
        total = self.intercept + sum(map(weight, present, repeat(0.0)))
        for index, value in valued.items():
            total += weight(index, 0.0) * value
        return total

    def score(
        self, prompt: str, answer_text: str, scores: Mapping[str, float] | None = None
    ) -> float:
        """The probability, from 0 to 1, that the answer is right."""
        z = self.logit(prompt, answer_text, scores)
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)

    # -- the model file ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "kind": KIND,
            "features": self.features.to_json(),
            "intercept": self.intercept,
            "metadata": dict(self.metadata),
            "weights": [[k, self.weights[k]] for k in sorted(self.weights)],
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model file (JSON; its parent directories are made); returns its path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.dumps(), encoding="utf-8")
        return target

    def dumps(self) -> str:
        """The model file's text: the keys sorted, one setting and one weight a line."""
        data = self.to_json()
        lines = []
        for name in sorted(data):
            if name == "weights":
                pairs = [json.dumps(pair, allow_nan=False) for pair in data[name]]
                body = "[\n  " + ",\n  ".join(pairs) + "\n ]" if pairs else "[]"
            else:
                body = json.dumps(data[name], sort_keys=True, allow_nan=False)
            lines.append(f" {json.dumps(name)}: {body}")
        return "{\n" + ",\n".join(lines) + "\n}\n"

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, extra: Extra | None = None) -> Scorer:
        if not isinstance(data, Mapping) or data.get("kind") != KIND:
            raise ValueError(f"not an escalate learned-gate model file (no 'kind': {KIND!r})")
        found = data.get("format")
        if found != FORMAT:
            raise ValueError(
                f"unknown model file format {found!r}: this escalate reads format {FORMAT}; "
                "retrain the model, or use the escalate version that wrote it"
            )
        features = Features.from_json(data.get("features", {}), extra=extra)
        weights = {int(k): float(v) for k, v in data.get("weights", [])}
        return cls(weights, float(data["intercept"]), features, dict(data.get("metadata", {})))

    @classmethod
    def load(cls, path: str | os.PathLike[str], extra: Extra | None = None) -> Scorer:
        """Read a model file :meth:`save` wrote. A model trained with ``extra`` features
        needs the same callable again (it is not saved); a file of an unknown format, or
        not a model file, raises ValueError."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not a learned-gate model file: {error}") from None
        try:
            return cls.from_json(data, extra=extra)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

    def describe(self) -> str:
        """One line: what the model is and what it was trained on."""
        meta = self.metadata
        auc = meta.get("cv_auc")
        auc_text = "n/a" if auc is None else f"{auc:.3f}"
        return (
            f"learned gate: {len(self.weights)} nonzero weights of {self.features.buckets}, "
            f"trained on {meta.get('examples', '?')} examples ({meta.get('groups', '?')} "
            f"groups), cross-validated AUC {auc_text}"
        )
