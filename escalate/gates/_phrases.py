"""Phrases an answer must not say: :func:`not_refusal`, :func:`not_hedging`.

Mechanical: one compiled regex per gate, matched case-insensitively on word boundaries.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from escalate.exceptions import ConfigurationError
from escalate.gates._fields import all_texts, check_path, listing, resolve, split_path, texts
from escalate.gates._protocol import GateContext, ModelAwareGate, Rejected

__all__ = ["DEFAULT_HEDGES", "DEFAULT_REFUSALS", "PhraseGate", "not_hedging", "not_refusal"]


DEFAULT_REFUSALS: tuple[str, ...] = (
    "I cannot",
    "I can't",
    "I can not",
    "I'm unable",
    "I am unable",
    "I'm not able to",
    "I am not able to",
    "I won't be able to",
    "I must decline",
    "I'm sorry, but",
    "I apologize, but",
    "as an AI",
    "as a language model",
)
"""Phrases :func:`not_refusal` looks for, matched case-insensitively on word boundaries."""

DEFAULT_HEDGES: tuple[str, ...] = (
    "I'm not sure",
    "I am not sure",
    "I'm not certain",
    "I am not certain",
    "not entirely sure",
    "might be",
    "may or may not",
    "possibly",
    "perhaps",
    "I think",
    "I believe",
    "I guess",
    "it's unclear",
    "it is unclear",
    "hard to say",
)
"""Phrases :func:`not_hedging` looks for, matched case-insensitively on word boundaries."""


_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


@dataclass(frozen=True)
class PhraseGate:
    """No text field says one of the phrases (see :func:`not_refusal`, :func:`not_hedging`)."""

    path: tuple[str, ...] | None
    phrases: tuple[str, ...]
    what: str
    name: str
    regex: re.Pattern[str] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        alternatives = "|".join(
            re.escape(p.translate(_APOSTROPHES).strip())
            for p in sorted(self.phrases, key=len, reverse=True)
        )
        object.__setattr__(
            self, "regex", re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
        )

    def check_response_model(self, response_model: type[Any]) -> None:
        """See :meth:`Length.check_response_model`; nothing to check without a field."""
        if self.path is not None:
            check_path(response_model, self.path, self.name)

    def __call__(self, answer: Any, context: GateContext, /) -> None:
        if self.path is None:
            found = all_texts(answer)
        else:
            found = list(texts(resolve(answer, self.path), field=".".join(self.path)))
        hits: list[str] = []
        for where, text in found:
            match = self.regex.search(text.translate(_APOSTROPHES))
            if match:
                hits.append(f"{where or 'the answer'} says {match.group(0)!r}")
        if hits:
            raise Rejected(f"{self.what}: {listing(hits, 3)}")


def _phrase_gate(
    kind: str, field: str | None, phrases: Iterable[str], what: str, name: str | None
) -> PhraseGate:
    path = split_path(field, kind) if field is not None else None
    if isinstance(phrases, str):
        raise ConfigurationError(f"{kind}: phrases must be a list of phrases, not one string")
    listed = tuple(phrases)
    if not listed or not all(isinstance(p, str) and p.strip() for p in listed):
        raise ConfigurationError(f"{kind}: phrases must be non-empty strings, got {listed!r}")
    default = f"{kind}({field})" if field is not None else kind
    return PhraseGate(path, listed, what, name or default)


def not_refusal(
    field: str | None = None,
    *,
    phrases: Iterable[str] = DEFAULT_REFUSALS,
    name: str | None = None,
) -> PhraseGate:
    """Reject an answer that refuses ("I cannot", "I'm unable", "as an AI", ...).

    Phrases match case-insensitively, on word boundaries, with typographic apostrophes
    read as ``'``. ``field=None`` checks every string field of the answer. ``phrases``
    replaces :data:`DEFAULT_REFUSALS` (extend it with ``[*DEFAULT_REFUSALS, "..."]``).
    A refusal phrase quoted in legitimate content ("the customer wrote: I cannot log in")
    rejects too: point ``field`` at the fields the model writes in its own voice.
    """
    return _phrase_gate("not_refusal", field, phrases, "refusal", name)


def not_hedging(
    field: str | None = None,
    *,
    phrases: Iterable[str] = DEFAULT_HEDGES,
    name: str | None = None,
) -> PhraseGate:
    """Reject an answer that hedges ("I'm not sure", "might be", "possibly", "I think",
    ...); matched and configured like :func:`not_refusal`, with :data:`DEFAULT_HEDGES`."""
    return _phrase_gate("not_hedging", field, phrases, "hedging", name)


if TYPE_CHECKING:  # mypy checks the gate has the capabilities the engine uses
    _ModelAwareGate: type[ModelAwareGate] = PhraseGate
