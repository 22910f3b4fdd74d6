"""Audits of what passed: the setting, its checks, the choice of which calls to audit, and
the comparison of two answers on a key.

``escalating(..., audit=Audit(share=0.02))``: of the answers that passed every gate on a
tier below the auditing tier (the strongest by default), a share is sent again, same
messages and response model, to the auditing tier, and the two answers are compared on a
key. The audit is an attempt on the receipt (``purpose="audit"``, its cost counted), never
the returned answer; the receipt's ``audit`` (:class:`~escalate.AuditVerdict`) says whether
they agreed. A disagreement is a false pass of the gates and the tier that let the answer
through: the receipt store measures those rates and keeps the disagreements as labels.

No I/O here: the engine (``_auditing``) asks this room which calls to audit and what the
verdict is; the faces and the background runner (``_background``) do the requests.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from escalate._answers import AnswerShape
from escalate.exceptions import ConfigurationError
from escalate.gates._consistency import vote_key
from escalate.gates._fields import resolve, split_path

__all__ = ["Audit", "AuditPlan", "check_audit", "compare"]

Mode = Literal["inline", "background"]
KeySpec = str | Callable[[Any], Any] | None


@dataclass(frozen=True)
class Audit:
    """Send a share of the answers that passed to a stronger tier, and compare.

    - ``share``: the probability that an answer which passed every gate on a tier below
      the auditing tier is audited (0 never, 1 always; 0.02 is a sensible start).
    - ``key``: what the two answers must share to agree: a field of the response model
      (a dotted path, ``"total"``, ``"customer.id"``), a function of the answer, or
      ``None``: the whole answer. For a response model that is not a ``BaseModel``
      (``int``, ``str``, a ``Literal``), ``"answer"`` also names the whole answer. Keys
      are normalised as the consistency gate's votes are (:func:`~escalate.gates.vote_key`:
      numbers by value, dates in ISO form, strings by case and spacing).
    - ``mode``: ``"inline"``: the audit runs in the call, before it returns (the call
      takes the auditing tier's latency too); ``"background"``: the call returns at once
      and the audit runs afterwards, in escalate's background worker, delivering an
      amended receipt (same id) to the sinks and the store and an
      :class:`~escalate.events.Audited` event to the hooks.
    - ``tier``: the auditing tier, by name or index; ``None``: the strongest.
    - ``sample``: the random source, a function returning a float in [0, 1) (a call is
      audited when it is below ``share``); ``seed``: a seeded source instead. Both are
      for reproducible selection (tests, replays); by default a process-wide
      ``random.Random``.
    """

    share: float = 0.02
    key: KeySpec = None
    mode: Mode = "inline"
    tier: str | int | None = None
    sample: Callable[[], float] | None = None
    seed: int | None = None


@dataclass(frozen=True)
class AuditPlan:
    """The checked audit setting, as the engine uses it."""

    share: float
    mode: Mode
    tier: int | None
    """The auditing tier's index; ``None``: the strongest (the last of the plan's tiers,
    whatever tiers a test override put in force)."""
    key_name: str | None
    read_key: Callable[[Any], Any]
    source: Callable[[], float] = field(repr=False, compare=False, default=random.random)

    def tier_index(self, tiers: int) -> int:
        """The auditing tier's index among ``tiers`` tiers."""
        if self.tier is None:
            return tiers - 1
        return min(self.tier, tiers - 1)

    def selects(self) -> bool:
        """Whether this call is audited: drawn with probability ``share``."""
        if self.share <= 0:
            return False
        if self.share >= 1:
            return True
        return float(self.source()) < self.share


def check_audit(audit: object, tiers: Sequence[Any], shape: AnswerShape) -> AuditPlan | None:
    """The audit setting checked against the plan's tiers and response model, or a
    :class:`~escalate.ConfigurationError` saying what is wrong."""
    if audit is None:
        return None
    if not isinstance(audit, Audit):
        raise ConfigurationError(f"audit must be an Audit(...), got {type(audit).__name__}")
    share = audit.share
    if isinstance(share, bool) or not isinstance(share, (int, float)) or math.isnan(share):
        raise ConfigurationError(f"Audit share must be a number in [0, 1], got {share!r}")
    if not 0 <= share <= 1:
        raise ConfigurationError(f"Audit share must be in [0, 1], got {share!r}")
    if audit.mode not in ("inline", "background"):
        raise ConfigurationError(f"Audit mode must be 'inline' or 'background', got {audit.mode!r}")
    if len(tiers) < 2:
        raise ConfigurationError(
            "audit= needs at least two tiers: an audit asks a stronger tier than the one "
            "that answered, and this plan has one"
        )
    index = _tier_index(audit.tier, tiers)
    if index == 0:
        raise ConfigurationError(
            f"Audit tier {tiers[0].name!r} is the cheapest tier: no tier below it could be "
            "audited; audit with a stronger tier (tier=None: the strongest)"
        )
    name, read = _key(audit.key, shape)
    return AuditPlan(
        share=float(share),
        mode=audit.mode,
        tier=None if index == len(tiers) - 1 else index,
        key_name=name,
        read_key=read,
        source=_source(audit),
    )


def _tier_index(tier: str | int | None, tiers: Sequence[Any]) -> int:
    if tier is None:
        return len(tiers) - 1
    if isinstance(tier, bool) or not isinstance(tier, (str, int)):
        raise ConfigurationError(f"Audit tier must be a tier's name or index, got {tier!r}")
    if isinstance(tier, int):
        if not -len(tiers) <= tier < len(tiers):
            raise ConfigurationError(
                f"Audit tier {tier} is out of range: the plan has {len(tiers)} tiers"
            )
        return tier % len(tiers)
    names = [t.name for t in tiers]
    if tier not in names:
        raise ConfigurationError(
            f"Audit tier {tier!r} is not one of this plan's tiers: {', '.join(names)}"
        )
    return names.index(tier)


def _source(audit: Audit) -> Callable[[], float]:
    if audit.sample is not None and audit.seed is not None:
        raise ConfigurationError("Audit takes sample= or seed=, not both")
    if audit.sample is not None:
        if not callable(audit.sample):
            raise ConfigurationError(
                f"Audit sample must be a function returning a float in [0, 1), got {audit.sample!r}"
            )
        return audit.sample
    if audit.seed is not None:
        return random.Random(audit.seed).random
    return random.random


def _key(key: KeySpec, shape: AnswerShape) -> tuple[str | None, Callable[[Any], Any]]:
    """The key's name for the receipt, and how to read it from an answer."""
    if key is None:
        return None, _whole
    if callable(key):
        return getattr(key, "__name__", None) or repr(key), key
    if not isinstance(key, str):
        raise ConfigurationError(
            f"Audit key must be a field name, a function of the answer or None, got {key!r}"
        )
    if shape.wrapped:
        if key == "answer":
            return key, _whole
        raise ConfigurationError(
            f"Audit key {key!r}: the response model {shape.name} has no fields (it is not a "
            "BaseModel); use key=None (or 'answer') for the whole answer, or a function"
        )
    path = split_path(key, "Audit")
    _check_field(shape.request_model, path, key)
    return key, lambda value: _read(value, path)


def _check_field(model: Any, path: tuple[str, ...], key: str) -> None:
    current = model
    for part in path:
        fields = getattr(current, "model_fields", None)
        if fields is None:
            return  # below a list or a plain type: checked on the answer itself
        if part not in fields:
            raise ConfigurationError(
                f"Audit key {key!r} is not a field of {getattr(model, '__name__', model)} "
                f"(its fields: {', '.join(getattr(model, 'model_fields', {})) or 'none'})"
            )
        current = fields[part].annotation


def _whole(value: Any) -> Any:
    return value


def _read(value: Any, path: tuple[str, ...]) -> Any:
    found = [found for _, found in resolve(value, path)]
    return found[0] if len(found) == 1 else found


def key_of(plan: AuditPlan, value: Any) -> str | None:
    """The normalised key of an answer; ``None`` when the key cannot be read from it."""
    try:
        return vote_key(plan.read_key(value))
    except Exception:  # a key function's bug or a missing field: no comparison
        return None


def compare(
    plan: AuditPlan, answer: Any, audited: Any
) -> tuple[str | None, str | None, bool | None]:
    """(the answer's key, the audit's key, whether they agree: ``None`` when either key
    could not be read)."""
    mine, theirs = key_of(plan, answer), key_of(plan, audited)
    if mine is None or theirs is None:
        return mine, theirs, None
    return mine, theirs, mine == theirs
