"""The consistency gate: ask the tier several times; trust it when the answers agree.

Self-consistency (Wang et al., 2022) as a gate: the engine samples ``n`` answers from the
tier, the majority answer is the one returned, and the share of samples that agree with it
is the score. Below ``min_agreement`` the task moves up. Sampling only varies with a
temperature above 0: give the tier ``create_kwargs={"temperature": 0.7}`` or so.

How the samples are drawn:

- ``one_request=True`` (the default where every deployment of the tier takes OpenAI's
  ``n``: openai and ``compatible`` tiers): the tier's answering request asks for ``n``
  choices. One attempt on the receipt, the prompt billed once; each choice is validated on
  its own, and one that fails is a failed sample, not a failed call.
- ``one_request=False`` (and every provider without ``n``): the answer, then ``n - 1`` more
  requests (concurrent under async), each an attempt with purpose ``sample``.
- ``stop_early=True`` (separate requests only): the samples are drawn one at a time and
  drawing stops as soon as the remaining ones cannot change the verdict (adaptive
  consistency, Aggarwal et al., 2023); ``stop_early=k``: also stop once the first ``k``
  samples agree.

What agrees: two samples agree when their *keys* are equal. The key is the ``field`` (a
dotted path; None: the whole answer), passed through ``key=`` when given, then normalised
(:func:`vote_key`): numbers by value (``"1,200.00"``, ``1200`` and ``1200.0`` agree), dates
as ISO dates, strings by case and spacing, models and containers as sorted JSON.

The agreement measure (the score) is ``agreeing / answered`` (``over="answered"``, the
default): the samples whose key equals the returned answer's, over the samples that
answered; failed samples (a provider error, a choice that did not validate) are left out.
``over="asked"`` divides by the samples asked for instead, so failed samples count against
the answer. Every sample's key, ``None`` for a failed one, is on the answer's attempt
(``Attempt.votes``).
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from escalate.exceptions import ConfigurationError
from escalate.gates._protocol import GateContext, Rejected, SamplingGate

__all__ = ["Consistency", "Variant", "consistency", "vote_key"]

_NUMBER = re.compile(r"^[-+]?[$€£]?\s*[-+]?(\d{1,3}(,\d{3})+|\d+)?(\.\d+)?\s*%?$")


def _number(text: str) -> str | None:
    """The canonical form of a number written as text ("$1,200.50" -> "1200.5")."""
    stripped = text.strip()
    if not stripped or not _NUMBER.match(stripped) or not any(c.isdigit() for c in stripped):
        return None
    cleaned = re.sub(r"[$€£,%\s]", "", stripped)
    try:
        return _canonical(Decimal(cleaned))
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        return None


def _canonical(number: Decimal) -> str:
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


def vote_key(value: Any) -> str:
    """The normalised key two votes must share to agree: numbers by value (a string that
    is a number included: ``"1,200.00"`` is ``1200``), dates and times in ISO form,
    strings with case and spacing ignored, models and containers as sorted JSON."""
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float, Decimal)):
        try:
            return _canonical(Decimal(str(value)))
        except InvalidOperation:
            return str(value)  # nan, inf: only equal to themselves
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, str):
        number = _number(value)
        if number is not None:
            return number
        return " ".join(value.split()).casefold()
    return json.dumps(value, sort_keys=True, default=str)


@dataclass(frozen=True)
class Variant:
    """Another prompt for the same question, for a mixture of prompts: ``prompt`` takes the
    decorated function's arguments (a sync function of its signature) and returns what the
    function returns (a str or messages); ``samples`` of the gate's ``n`` are drawn with
    it, and each of its attempts says ``variant=name`` on the receipt."""

    name: str
    prompt: Callable[..., Any]
    samples: int


@dataclass(frozen=True)
class Consistency:
    """See :func:`consistency`."""

    n: int
    field: str | None
    min_agreement: float
    name: str = "consistency"
    by: Callable[[Any], Any] | None = None
    """The user's ``key=``: what to vote on, read from the field (or the answer)."""
    one_request: bool | None = None
    """``n`` choices in one request (True), separate requests (False), or the first where
    every deployment of the tier takes ``n`` (None)."""
    stop_early: bool | int = False
    over: Literal["answered", "asked"] = "answered"
    variants: tuple[Variant, ...] = ()
    """Prompt variants whose samples join the vote; the function's own prompt gives the
    answer and the rest of the ``n``."""

    @property
    def samples(self) -> int:
        return self.n

    def key(self, answer: Any) -> str:
        """What two answers must share to agree: the field (or the whole answer), through
        ``key=`` when given, normalised by :func:`vote_key`."""
        value = answer
        for part in (self.field or "").split(".") if self.field else ():
            if isinstance(value, BaseModel) and part not in type(value).model_fields:
                fields = ", ".join(type(value).model_fields)
                raise Rejected(f"the answer has no field {self.field!r} (fields: {fields})")
            value = getattr(value, part) if isinstance(value, BaseModel) else value[part]
        if self.by is not None:
            value = self.by(value)
        return vote_key(value)

    def choose(self, samples: Sequence[Any]) -> Any:
        """The majority answer (the earliest of the most common, on ties)."""
        counts = Counter(self.key(sample) for sample in samples)
        top = max(counts.values())
        return next(sample for sample in samples if counts[self.key(sample)] == top)

    def decided(self, votes: Sequence[str | None]) -> bool:
        """Whether drawing the remaining samples could not change the verdict: the
        majority is fixed and the agreement is sure to pass (or sure to fail) whatever the
        rest say; or, with ``stop_early=k``, the first ``k`` samples all agree."""
        if not self.stop_early:
            return False
        drawn, remaining = len(votes), self.n - len(votes)
        if remaining <= 0:
            return True
        k = self.stop_early if not isinstance(self.stop_early, bool) else 0
        if k and drawn >= k and None not in votes[:k] and len(set(votes[:k])) == 1:
            return True
        counts = Counter(vote for vote in votes if vote is not None).most_common(2)
        if not counts:
            return False
        top = counts[0][1]
        second = counts[1][1] if len(counts) > 1 else 0
        if top <= second + remaining:
            return False  # the rest could still make another answer the majority
        answered = sum(vote is not None for vote in votes)
        if self.over == "asked":
            worst, best = top / self.n, (top + remaining) / self.n
        else:
            worst, best = top / (answered + remaining), (top + remaining) / (answered + remaining)
        return worst >= self.min_agreement or best < self.min_agreement

    def __call__(self, answer: Any, context: GateContext) -> float:
        samples = context.samples or (answer,)
        asked = max(context.asked, len(samples)) if self.over == "asked" else len(samples)
        if len(samples) < 2:
            raise Rejected(f"only {len(samples)} of {self.n} samples answered", score=0.0)
        agreeing = sum(self.key(sample) == self.key(answer) for sample in samples)
        agreement = agreeing / asked
        if agreement < self.min_agreement:
            what = f"on {self.field!r}" if self.field else ""
            of = "samples asked for" if self.over == "asked" else "samples"
            raise Rejected(
                f"{agreeing} of {asked} {of} agree {what} "
                f"({agreement:.2f} < {self.min_agreement:.2f})".replace("  ", " "),
                score=agreement,
            )
        return agreement


def consistency(
    n: int = 5,
    *,
    field: str | None = None,
    min_agreement: float = 0.6,
    key: Callable[[Any], Any] | None = None,
    one_request: bool | None = None,
    stop_early: bool | int = False,
    over: Literal["answered", "asked"] = "answered",
    variants: Sequence[Variant] = (),
) -> Consistency:
    """Sample ``n`` answers from the tier; return the majority; reject when fewer than
    ``min_agreement`` of them agree on ``field`` (a dotted path; None: the whole answer),
    read through ``key`` when given and normalised (:func:`vote_key`).

    ``one_request``: ``n`` choices in one request (the prompt billed once) or ``n``
    requests; the default is one request where every deployment of the tier takes ``n``.
    ``stop_early``: draw separate samples one at a time and stop when the verdict is
    decided (``True``), or also when the first ``stop_early`` samples agree (an int).
    ``over``: the agreement's denominator, the samples that ``"answered"`` or all those
    ``"asked"`` for. ``variants``: a mixture of prompts (:class:`Variant`), their samples
    voted with those of the function's own prompt, which gives the rest of the ``n`` (at
    least one: the answer). See the module docstring and docs/gates.md for what each costs.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ConfigurationError(f"consistency(n=...) needs at least 2 samples, got {n!r}")
    if not 0 < min_agreement <= 1:
        raise ConfigurationError(f"min_agreement must be in (0, 1], got {min_agreement!r}")
    if key is not None and not callable(key):
        raise ConfigurationError(f"consistency(key=...) takes a function, got {key!r}")
    if one_request not in (None, True, False):
        raise ConfigurationError(f"one_request must be True, False or None, got {one_request!r}")
    if not isinstance(stop_early, (bool, int)) or (
        not isinstance(stop_early, bool) and not 2 <= stop_early <= n
    ):
        raise ConfigurationError(
            f"stop_early must be True, False or a number of agreeing samples from 2 to n={n}, "
            f"got {stop_early!r}"
        )
    if stop_early and one_request:
        raise ConfigurationError(
            "consistency(one_request=True, stop_early=...): the choices of one request "
            "arrive together, so there is nothing to stop early; choose one (docs/gates.md "
            "prices both)"
        )
    if over not in ("answered", "asked"):
        raise ConfigurationError(f"over must be 'answered' or 'asked', got {over!r}")
    mixture = tuple(variants)
    for variant in mixture:
        if not isinstance(variant, Variant):
            raise ConfigurationError(
                f"consistency(variants=...) takes Variant(...)s, got {variant!r}"
            )
        if not callable(variant.prompt) or inspect.iscoroutinefunction(variant.prompt):
            raise ConfigurationError(
                f"variant {variant.name!r}: prompt must be a sync function of the decorated "
                "function's arguments returning its prompt"
            )
        if not isinstance(variant.samples, int) or variant.samples < 1:
            raise ConfigurationError(
                f"variant {variant.name!r}: samples must be an int >= 1, got {variant.samples!r}"
            )
    names = [variant.name for variant in mixture]
    if len(set(names)) != len(names) or not all(isinstance(x, str) and x for x in names):
        raise ConfigurationError(f"variants need distinct non-empty names, got {names!r}")
    if sum(variant.samples for variant in mixture) >= n:
        raise ConfigurationError(
            f"consistency(n={n}): the variants' samples "
            f"({sum(v.samples for v in mixture)}) leave none for the function's own prompt, "
            "which gives the answer: raise n"
        )
    one = False if stop_early else one_request
    return Consistency(n, field, min_agreement, "consistency", key, one, stop_early, over, mixture)


if TYPE_CHECKING:  # mypy checks the gate has the capabilities the engine uses
    _SamplingGate: type[SamplingGate] = Consistency
