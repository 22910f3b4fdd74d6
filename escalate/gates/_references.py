"""References an answer makes: :func:`cites` (enough, and only allowed ones) and
:func:`known_ids` (every id exists).

Mechanical: no model call; a ``known_ids`` lookup function runs on every answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from escalate.exceptions import ConfigurationError
from escalate.gates._fields import FieldGate, leaves, listing, resolve, split_path, texts
from escalate.gates._protocol import GateContext, ModelAwareGate, Rejected

__all__ = ["Cites", "KnownIds", "cites", "known_ids"]


@dataclass(frozen=True)
class Cites(FieldGate):
    """The field holds enough references, and only allowed ones (see :func:`cites`)."""

    path: tuple[str, ...]
    pattern: re.Pattern[str] | None
    allowed: Collection[Any] | None
    min_count: int
    name: str

    def references(self, answer: Any) -> list[Any]:
        """The distinct references the answer makes at this field, in order."""
        values = resolve(answer, self.path)
        found: list[Any] = []
        if self.pattern is not None:
            for _, text in texts(values, field=self.field):
                for match in self.pattern.finditer(text):
                    found.append(match.group(1) if self.pattern.groups else match.group(0))
        else:
            for _, value in leaves(values):
                if isinstance(value, str):
                    value = value.strip()
                if value not in ("", None):
                    found.append(value)
        return list(dict.fromkeys(found))

    def __call__(self, answer: Any, context: GateContext, /) -> None:
        refs = self.references(answer)
        if self.allowed is not None:
            bad = [r for r in refs if r not in self.allowed]
            if bad:
                listed = listing([repr(r) for r in bad])
                raise Rejected(f"{self.field} cites {len(bad)} id(s) not allowed: {listed}")
        if len(refs) < self.min_count:
            what = f"matching the pattern {self.pattern.pattern}" if self.pattern else ""
            raise Rejected(
                f"{self.field} cites {len(refs)} distinct reference(s) {what}".rstrip()
                + f"; needs at least {self.min_count}"
            )


def _freeze(ids: Collection[Any]) -> Collection[Any]:
    # Sets and mappings are kept as given (one may update them live); anything else becomes
    # a frozenset, so that `in` is O(1) for a list of a hundred thousand ids.
    if isinstance(ids, (AbstractSet, Mapping)):
        return ids
    return frozenset(ids)


def _check_ids(gate: str, ids: object, what: str) -> None:
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Collection):
        raise ConfigurationError(
            f"{gate}: {what} must be a collection of ids (a set, a list), got {ids!r}"
        )


def cites(
    field: str,
    *,
    pattern: str | None = None,
    allowed: Collection[str] | None = None,
    min_count: int = 1,
    name: str | None = None,
) -> Cites:
    """Reject an answer that cites fewer than ``min_count`` distinct references at
    ``field``, or cites one outside ``allowed``.

    With ``pattern`` (a regex), the references are its matches in the field's text (a
    string or list of strings): the whole match, or its first group if it has groups, so
    ``r"\\[(\\d+)\\]"`` reads ``"[3]"`` as ``"3"``. Without one, the field's values are the
    references (a list of ids, or a single id). ``allowed`` lists the ids the answer may
    cite (the sources it was given); the reason names the ones it may not.
    """
    path = split_path(field, "cites")
    compiled: re.Pattern[str] | None = None
    if pattern is not None:
        try:
            compiled = re.compile(pattern)
        except re.error as error:
            raise ConfigurationError(
                f"cites: pattern {pattern!r} is not a regex: {error}"
            ) from None
    if allowed is not None:
        _check_ids("cites", allowed, "allowed")
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 0:
        raise ConfigurationError(f"cites: min_count must be an int >= 0, got {min_count!r}")
    return Cites(
        path,
        compiled,
        _freeze(allowed) if allowed is not None else None,
        min_count,
        name or f"cites({field})",
    )


@dataclass(frozen=True)
class KnownIds(FieldGate):
    """Every id at the field exists (see :func:`known_ids`)."""

    path: tuple[str, ...]
    known: Collection[Any] | Callable[[Any], bool]
    name: str

    def __call__(self, answer: Any, context: GateContext, /) -> None:
        ids = [v for _, v in leaves(resolve(answer, self.path)) if v is not None]
        known = self.known
        if callable(known) and not isinstance(known, Collection):
            unknown = [i for i in ids if not known(i)]
        else:
            unknown = [i for i in ids if i not in known]
        unknown = list(dict.fromkeys(unknown))
        if unknown:
            raise Rejected(f"unknown id(s) at {self.field}: {listing([repr(u) for u in unknown])}")


def known_ids(
    field: str, known: Collection[str] | Callable[[str], bool], *, name: str | None = None
) -> KnownIds:
    """Reject an answer holding an id that does not exist: a hallucinated order number,
    customer, SKU or document id.

    ``field`` holds one id or a list of them (``None`` is skipped). ``known`` is the set of
    real ids, or a lookup ``fn(id) -> bool`` (a database query; keep it fast, it runs on
    every answer). The reason lists the unknown ids, at most five, then "and N more".
    """
    path = split_path(field, "known_ids")
    if not callable(known) or isinstance(known, Collection):
        _check_ids("known_ids", known, "known")
        known = _freeze(known)
    return KnownIds(path, known, name or f"known_ids({field})")


if TYPE_CHECKING:  # mypy checks the gate has the capabilities the engine uses
    _cites: type[ModelAwareGate] = Cites
    _known_ids: type[ModelAwareGate] = KnownIds
