"""The model's own stated confidence: :func:`self_reported`.

It costs the few output tokens of a confidence field in the response model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from escalate.exceptions import ConfigurationError
from escalate.gates._fields import FieldGate, resolve, split_path
from escalate.gates._protocol import GateContext, ModelAwareGate, Rejected

__all__ = ["SelfReported", "self_reported"]


@dataclass(frozen=True)
class SelfReported(FieldGate):
    """The model's own stated confidence is high enough (see :func:`self_reported`)."""

    path: tuple[str, ...]
    threshold: float
    name: str

    def __call__(self, answer: Any, context: GateContext, /) -> float:
        values = resolve(answer, self.path)
        if len(values) != 1:
            raise Rejected(f"{self.field} must hold one number, found {len(values)} values")
        where, value = values[0]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            shown = "missing (None)" if value is None else f"a {type(value).__name__}"
            raise Rejected(f"{where} is {shown}, not a confidence number")
        number = float(value)
        if not 0 <= number <= 100 or math.isnan(number):
            raise Rejected(f"{where} is {value!r}: a confidence is 0..1 (or 0..100)")
        confidence = number / 100 if number > 1 else number
        if confidence < self.threshold:
            raise Rejected(
                f"self-reported confidence {confidence:.2f} < {self.threshold:.2f}",
                score=confidence,
            )
        return confidence


def self_reported(
    field: str = "confidence", threshold: float = 0.7, *, name: str | None = None
) -> SelfReported:
    """Reject an answer whose own confidence field is below ``threshold``.

    Give the response model a field for it (``confidence: float = Field(description="How
    sure you are, from 0 to 1")``). A value above 1 is read as a percentage (85 is 0.85; 1
    is 1.0). The normalised value is the score (``attempt.scores[name]``, default name
    ``self_reported``). It costs the few output tokens of the field. Models are poorly
    calibrated about themselves: use it as one signal, and check its scores against
    outcomes before trusting a threshold.
    """
    path = split_path(field, "self_reported")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ConfigurationError(f"self_reported: threshold must be a number, got {threshold!r}")
    if not 0 <= threshold <= 1:
        raise ConfigurationError(f"self_reported: threshold must be in [0, 1], got {threshold!r}")
    return SelfReported(path, float(threshold), name or "self_reported")


if TYPE_CHECKING:  # mypy checks the gate has the capabilities the engine uses
    _ModelAwareGate: type[ModelAwareGate] = SelfReported
