"""The consistency gate: ask the tier several times; trust it when the answers agree.

Self-consistency (Wang et al., 2022) as a gate: the engine samples ``n`` answers from the
tier (concurrently under async; each one an attempt on the receipt, its cost counted), the
majority answer is the one returned, and the share of samples that agree with it is the
score. Below ``min_agreement`` the task moves up. Sampling only varies with a temperature
above 0: give the tier ``create_kwargs={"temperature": 0.7}`` or so.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from escalate.exceptions import ConfigurationError
from escalate.gates._protocol import GateContext, Rejected, SamplingGate

__all__ = ["Consistency", "consistency"]


@dataclass(frozen=True)
class Consistency:
    """See :func:`consistency`."""

    n: int
    field: str | None
    min_agreement: float
    name: str = "consistency"

    @property
    def samples(self) -> int:
        return self.n

    def key(self, answer: Any) -> str:
        """What two answers must share to agree: the field (or the whole answer),
        normalised (case and surrounding space of strings; JSON of models)."""
        value = answer
        for part in (self.field or "").split(".") if self.field else ():
            if isinstance(value, BaseModel) and part not in type(value).model_fields:
                fields = ", ".join(type(value).model_fields)
                raise Rejected(f"the answer has no field {self.field!r} (fields: {fields})")
            value = getattr(value, part) if isinstance(value, BaseModel) else value[part]
        if isinstance(value, BaseModel):
            return value.model_dump_json()
        if isinstance(value, str):
            return " ".join(value.split()).casefold()
        return json.dumps(value, sort_keys=True, default=str)

    def choose(self, samples: Sequence[Any]) -> Any:
        """The majority answer (the earliest of the most common, on ties)."""
        counts = Counter(self.key(sample) for sample in samples)
        top = max(counts.values())
        return next(sample for sample in samples if counts[self.key(sample)] == top)

    def __call__(self, answer: Any, context: GateContext) -> float:
        samples = context.samples or (answer,)
        if len(samples) < 2:
            raise Rejected(f"only {len(samples)} of {self.n} samples answered", score=0.0)
        agreeing = sum(self.key(sample) == self.key(answer) for sample in samples)
        agreement = agreeing / len(samples)
        if agreement < self.min_agreement:
            what = f"on {self.field!r}" if self.field else ""
            raise Rejected(
                f"{agreeing} of {len(samples)} samples agree {what} "
                f"({agreement:.2f} < {self.min_agreement:.2f})".replace("  ", " "),
                score=agreement,
            )
        return agreement


def consistency(n: int = 5, *, field: str | None = None, min_agreement: float = 0.6) -> Consistency:
    """Sample ``n`` answers from the tier; return the majority; reject when fewer than
    ``min_agreement`` of them agree on ``field`` (a dotted path; None: the whole answer).
    Costs ``n - 1`` extra calls of the tier, all on the receipt."""
    if not isinstance(n, int) or n < 2:
        raise ConfigurationError(f"consistency(n=...) needs at least 2 samples, got {n!r}")
    if not 0 < min_agreement <= 1:
        raise ConfigurationError(f"min_agreement must be in (0, 1], got {min_agreement!r}")
    return Consistency(n, field, min_agreement)


if TYPE_CHECKING:  # mypy checks the gate has the capabilities the engine uses
    _SamplingGate: type[SamplingGate] = Consistency
