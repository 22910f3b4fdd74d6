"""What a learned gate reads of an answer: :class:`Features`, a configuration that turns
``(prompt, answer_text, scores)`` into a sparse vector of hashed features.

Pure Python (no numpy): a learned gate scores every cheap answer with it, so it must be
quick and must give the same vector in every process. Every feature is hashed into one of
``buckets`` indices with CRC-32 (``zlib.crc32``, never Python's salted ``hash()``), each
family in its own namespace, so ``the`` in the prompt and ``the`` in the answer are two
features:

- ``p:`` word n-grams of the prompt, ``a:`` word n-grams of the answer text (binary
  presence; n from ``ngrams[0]`` to ``ngrams[1]``, lowercased);
- ``s:`` the other gates' scores (the value; with ``scores=`` naming them, a missing one
  is a feature of its own);
- ``h:`` the answer's shape: its length in words (log-scaled), its lines (log-scaled), the
  share of its (UTF-8) bytes that are digits, and, when the answer is a JSON object (a
  pydantic model's output), which of its fields are None or empty and their share;
- ``x:`` the user's own features, ``extra(prompt, answer_text) -> {name: value}``.

The answer text is what the model produced (``attempt.raw_output``): when it is JSON, the
n-grams and the shape are read from its values (strings and numbers, each on its own
line), not from its quotes and keys, so a model's JSON and the raw output of the same
answer give the same features.
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from operator import mod
from typing import Any
from zlib import crc32

__all__ = ["Extra", "Features", "answer_values", "extra_name"]

Extra = Callable[[str, str], Mapping[str, float]]
"""``extra(prompt, answer_text) -> {name: value}``: a user's own features (the answer text
as the model produced it, JSON included)."""

# Words: the lowercased UTF-8 bytes split on whitespace, each ASCII punctuation character a
# word of its own ("$12.50?" -> "$", "12", ".", "50", "?"). Thirty-two bytes.replace calls
# and one split are several times quicker than a tokenising regular expression.
_PUNCTUATION = tuple((c.encode(), f" {c} ".encode()) for c in string.punctuation)
_SPACE = b" "
_DIGITS = b"0123456789"
_FORMAT_KEYS = ("answer", "buckets", "extra", "ngrams", "prompt", "scores", "shape")


def _seed(namespace: str) -> int:
    return crc32(namespace.encode())


_PROMPT, _ANSWER, _SCORE, _MISSING, _SHAPE, _EXTRA = (
    _seed(n) for n in ("p:", "a:", "s:", "s?:", "h:", "x:")
)


def extra_name(extra: Extra | None) -> str | None:
    """How a model file names an ``extra`` callable: its module and qualified name."""
    if extra is None:
        return None
    module = getattr(extra, "__module__", None) or ""
    name = getattr(extra, "__qualname__", None) or getattr(extra, "__name__", None)
    name = name or type(extra).__qualname__
    return f"{module}:{name}" if module else str(name)


@dataclass(frozen=True)
class Features:
    """The feature configuration of a learned gate (kept in its model file, as JSON).

    ``extra`` is a callable and is **not** saved: the model file records its name
    (:func:`extra_name`), and :meth:`Scorer.load <escalate.learn.Scorer.load>` refuses to
    load such a file unless it is given the callable again.
    """

    ngrams: tuple[int, int] = (1, 2)
    """Word n-grams from ``ngrams[0]`` to ``ngrams[1]`` words (unigrams and bigrams)."""
    buckets: int = 2**18
    """How many hashed indices the features share."""
    prompt: bool = True
    """Hash the prompt's n-grams (``False``: the answer alone, e.g. when prompts are not
    kept with the receipts)."""
    answer: bool = True
    """Hash the answer's n-grams."""
    scores: tuple[str, ...] | None = None
    """The gate scores read (``None``: every score given); with names, a missing score is
    itself a feature."""
    shape: bool = True
    """The answer's shape: words, lines, digits, empty fields."""
    extra: Extra | None = field(default=None, compare=False, repr=False)
    """The user's own features (not saved in the model file: see the class docstring)."""

    def __post_init__(self) -> None:
        low, high = self.ngrams
        if not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high):
            raise ValueError(
                f"Features: ngrams must be (low, high) with 1 <= low <= high, got {self.ngrams!r}"
            )
        if not isinstance(self.buckets, int) or self.buckets < 16:
            raise ValueError(f"Features: buckets must be an int >= 16, got {self.buckets!r}")
        object.__setattr__(self, "ngrams", (low, high))
        if self.scores is not None:
            object.__setattr__(self, "scores", tuple(self.scores))

    # -- the vector --------------------------------------------------------------------------

    def vector(
        self, prompt: str, answer_text: str, scores: Mapping[str, float] | None = None
    ) -> dict[int, float]:
        """The sparse feature vector: bucket -> value (an n-gram present: 1.0)."""
        present, valued = self.parts(prompt, answer_text, scores)
        out = dict.fromkeys(present, 1.0)
        for index, value in valued.items():
            out[index] = out.get(index, 0.0) + value
        return out

    def parts(
        self, prompt: str, answer_text: str, scores: Mapping[str, float] | None = None
    ) -> tuple[set[int], dict[int, float]]:
        """The vector in two parts (what :meth:`vector` sums): the buckets of the n-grams
        present (each 1.0), and the valued features (scores, shape, extra)."""
        buckets = self.buckets
        values, fields = answer_values(answer_text)
        present: set[int] = set()
        if self.prompt and prompt:
            self._ngrams(present, prompt.lower().encode(), _PROMPT)
        encoded = values.lower().encode() if values else b""
        if self.answer and encoded:
            self._ngrams(present, encoded, _ANSWER)
        valued: dict[int, float] = {}
        if scores:
            self._scores(valued, scores)
        elif self.scores:
            for name in self.scores:
                _add(valued, crc32(name.encode(), _MISSING) % buckets, 1.0)
        if self.shape:
            self._shape(valued, values, encoded, fields)
        if self.extra is not None:
            for name, value in self.extra(prompt, answer_text).items():
                _add(valued, crc32(str(name).encode(), _EXTRA) % buckets, float(value))
        return present, valued

    def _ngrams(self, out: set[int], text: bytes, seed: int) -> None:
        buckets = self.buckets
        for mark, spaced in _PUNCTUATION:
            text = text.replace(mark, spaced)
        words = text.split()
        low, high = self.ngrams
        # map() all the way down: no Python-level step per word
        if low == 1:
            out.update(map(mod, map(crc32, words, repeat(seed)), repeat(buckets)))
            low = 2
        for n in range(low, high + 1):
            grams = map(_SPACE.join, zip(*(words[i:] for i in range(n)), strict=False))
            out.update(map(mod, map(crc32, grams, repeat(seed)), repeat(buckets)))

    def _scores(self, out: dict[int, float], scores: Mapping[str, float]) -> None:
        buckets = self.buckets
        names = scores if self.scores is None else self.scores
        for name in names:
            value = scores.get(name)
            if value is None:
                _add(out, crc32(name.encode(), _MISSING) % buckets, 1.0)
            elif math.isfinite(value):
                _add(out, crc32(name.encode(), _SCORE) % buckets, float(value))

    def _shape(
        self, out: dict[int, float], values: str, encoded: bytes, fields: Mapping[str, bool]
    ) -> None:
        buckets = self.buckets
        digits = len(encoded) - len(encoded.translate(None, _DIGITS))
        shape = {
            "words": math.log1p(len(values.split())),
            "lines": math.log1p(values.count("\n") + 1 if values else 0),
            "digits": digits / len(encoded) if encoded else 0.0,
            "empty": 0.0 if values.strip() else 1.0,
        }
        if fields:
            shape["empty_share"] = sum(fields.values()) / len(fields)
            for name, empty in fields.items():
                if empty:
                    shape[f"empty:{name}"] = 1.0
        for name, value in shape.items():
            if value:
                _add(out, crc32(name.encode(), _SHAPE) % buckets, value)

    # -- the model file ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The configuration as JSON data (``extra`` by name only)."""
        return {
            "answer": self.answer,
            "buckets": self.buckets,
            "extra": extra_name(self.extra),
            "ngrams": list(self.ngrams),
            "prompt": self.prompt,
            "scores": None if self.scores is None else list(self.scores),
            "shape": self.shape,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, extra: Extra | None = None) -> Features:
        """The configuration :meth:`to_json` wrote; ``extra`` must be given again when it
        had one (ValueError otherwise, or when the names differ)."""
        unknown = set(data) - set(_FORMAT_KEYS)
        if unknown:
            raise ValueError(f"unknown feature settings in the model file: {sorted(unknown)}")
        saved = data.get("extra")
        if saved is not None and extra is None:
            raise ValueError(
                f"this model was trained with extra features from {saved}; a callable is not "
                "saved in the model file: load it with extra=<that function>"
            )
        if saved is None and extra is not None:
            raise ValueError("this model was trained without extra features: drop extra=")
        if saved is not None and extra_name(extra) != saved:
            raise ValueError(
                f"this model was trained with extra features from {saved}, not "
                f"{extra_name(extra)}: give the same function (or one of the same name)"
            )
        scores = data.get("scores")
        low, high = data.get("ngrams", (1, 2))
        return cls(
            ngrams=(int(low), int(high)),
            buckets=int(data.get("buckets", 2**18)),
            prompt=bool(data.get("prompt", True)),
            answer=bool(data.get("answer", True)),
            scores=None if scores is None else tuple(str(s) for s in scores),
            shape=bool(data.get("shape", True)),
            extra=extra,
        )


def _add(out: dict[int, float], index: int, value: float) -> None:
    out[index] = out.get(index, 0.0) + value


def answer_values(answer_text: str) -> tuple[str, dict[str, bool]]:
    """The text the answer's n-grams and shape are read from, and, when the answer is a
    JSON object, which of its top-level fields are empty (None, "", [] or {}).

    A JSON answer gives its values (strings and numbers), one a line, in order; any other
    text is itself."""
    text = answer_text.strip()
    if not text or text[0] not in "{[":
        return answer_text, {}
    try:
        data = json.loads(text)
    except ValueError:
        return answer_text, {}
    parts: list[str] = []
    _leaves(data, parts)
    fields = {}
    if isinstance(data, dict):
        fields = {str(k): v is None or v == "" or v == [] or v == {} for k, v in data.items()}
    return "\n".join(parts), fields


def _leaves(value: Any, parts: list[str]) -> None:
    if isinstance(value, str):
        if value:
            parts.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _leaves(item, parts)
    elif isinstance(value, list):
        for item in value:
            _leaves(item, parts)
    elif isinstance(value, bool):
        parts.append("true" if value else "false")
    elif isinstance(value, (int, float)):
        parts.append(str(value))
