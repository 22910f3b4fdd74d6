"""How much a text field holds: :func:`min_length`, :func:`max_length`, :func:`not_empty`.

Mechanical: no model call, microseconds. Fields are dotted paths (see :mod:`._fields`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from escalate.exceptions import ConfigurationError
from escalate.gates._fields import FieldGate, is_list, listing, resolve, split_path, texts
from escalate.gates._protocol import GateContext, ModelAwareGate, Rejected

__all__ = ["Length", "NotEmpty", "Unit", "max_length", "min_length", "not_empty"]

Unit = Literal["chars", "words"]


@dataclass(frozen=True)
class Length(FieldGate):
    """A text field's length is within a bound (see :func:`min_length`, :func:`max_length`)."""

    path: tuple[str, ...]
    n: int
    unit: Unit
    bound: Literal["min", "max"]
    name: str

    def __call__(self, answer: Any, context: GateContext, /) -> None:
        short: list[str] = []
        values = resolve(answer, self.path)
        if self.bound == "min":  # a missing text is as short as can be
            values = [(where, "" if value is None else value) for where, value in values]
        for where, text in texts(values, field=self.field):
            size = len(text.split()) if self.unit == "words" else len(text.strip())
            if (size < self.n) if self.bound == "min" else (size > self.n):
                short.append(f"{where} is {size} {self.unit}")
        if not short:
            return
        need = "at least" if self.bound == "min" else "at most"
        raise Rejected(f"{listing(short)}; needs {need} {self.n} {self.unit}")


def _length(
    kind: Literal["min", "max"], field: str, n: int, unit: Unit, name: str | None
) -> Length:
    gate = f"{kind}_length"
    path = split_path(field, gate)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigurationError(f"{gate}: n must be an int >= 0, got {n!r}")
    if unit not in ("chars", "words"):
        raise ConfigurationError(f"{gate}: unit must be 'chars' or 'words', got {unit!r}")
    return Length(path, n, unit, kind, name or f"{gate}({field})")


def min_length(field: str, n: int, *, unit: Unit = "chars", name: str | None = None) -> Length:
    """Reject when the text at ``field`` is shorter than ``n`` characters (surrounding
    whitespace not counted) or ``n`` words (``unit="words"``).

    A list of strings is checked element by element (an empty list passes: use
    :func:`not_empty` too); a model or list of models, by its string fields. A ``None``
    counts as empty text.
    """
    return _length("min", field, n, unit, name)


def max_length(field: str, n: int, *, unit: Unit = "chars", name: str | None = None) -> Length:
    """Reject when the text at ``field`` is longer than ``n`` characters or words; applied
    like :func:`min_length`."""
    return _length("max", field, n, unit, name)


@dataclass(frozen=True)
class NotEmpty(FieldGate):
    """The field holds something (see :func:`not_empty`)."""

    path: tuple[str, ...]
    name: str

    def __call__(self, answer: Any, context: GateContext, /) -> None:
        empty: list[str] = []
        for where, value in resolve(answer, self.path):
            if value is None or (isinstance(value, str) and not value.strip()):
                empty.append(where)
            elif is_list(value):
                if not value:
                    empty.append(f"{where} (an empty list)")
                empty.extend(
                    f"{where}[{i}]"
                    for i, v in enumerate(value)
                    if isinstance(v, str) and not v.strip()
                )
        if empty:
            raise Rejected(f"empty: {listing(empty)}")


def not_empty(field: str, *, name: str | None = None) -> NotEmpty:
    """Reject when ``field`` is ``None``, blank (empty or whitespace), an empty list, or a
    list holding a blank string."""
    return NotEmpty(split_path(field, "not_empty"), name or f"not_empty({field})")


if TYPE_CHECKING:  # mypy checks the gate has the capabilities the engine uses
    _length_gate: type[ModelAwareGate] = Length
    _not_empty: type[ModelAwareGate] = NotEmpty
