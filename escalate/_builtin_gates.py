"""The built-in gates: cheap, deterministic checks on a well-formed answer.

Every gate here is a small frozen object with a ``name`` and a ``__call__(answer, context)``
that returns ``None`` (or a score) to pass and raises :class:`~escalate.gates.Rejected` to
reject. They are built by the lowercase factories (:func:`min_length`, :func:`cites`, ...).

Fields are named by dotted paths into the answer: ``"summary"``, ``"customer.id"``. A field
may hold a string, a list of strings, a nested model, or a list of models; lists are walked
(``"items.sku"`` checks the ``sku`` of every item) and reasons name the element
(``items[2].sku``). A path the answer does not have is a rejection whose reason names the
field and the fields the answer has, so a typo shows in the first receipt; the gates'
``check_response_model(model)`` finds it earlier still, from the response model alone.

Cost: all gates but two are mechanical (no model call, microseconds).
:func:`logprob_confidence` reads the logprobs the answering request returned (nothing extra
to pay, but it needs an OpenAI JSON mode); :func:`self_reported` costs the few output tokens
of a confidence field in the response model.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel

import escalate.gates as _gates
from escalate.exceptions import ConfigurationError

if TYPE_CHECKING:
    from escalate.gates import GateContext

__all__ = [
    "DEFAULT_HEDGES",
    "DEFAULT_REFUSALS",
    "Cites",
    "Complete",
    "KnownIds",
    "Length",
    "LogprobConfidence",
    "NotEmpty",
    "PhraseGate",
    "SelfReported",
    "cites",
    "complete",
    "known_ids",
    "logprob_confidence",
    "max_length",
    "min_length",
    "not_empty",
    "not_hedging",
    "not_refusal",
    "self_reported",
]

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

Unit = Literal["chars", "words"]
Statistic = Literal["mean", "min", "quantile"]

_MAX_LISTED = 5


def _reject(reason: str, *, score: float | None = None) -> _gates.Rejected:
    return _gates.Rejected(reason, score=score)


def _listing(items: Sequence[str], limit: int = _MAX_LISTED) -> str:
    """``a, b, c, d, e and 3 more``."""
    shown = ", ".join(items[:limit])
    rest = len(items) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown


# --- field paths ---------------------------------------------------------------------------


def _split_path(field: str, gate: str) -> tuple[str, ...]:
    if not isinstance(field, str) or not field.strip():
        raise ConfigurationError(f"{gate}: field must be a dotted path such as 'summary'")
    parts = tuple(field.split("."))
    if any(not p.isidentifier() for p in parts):
        raise ConfigurationError(
            f"{gate}: field {field!r} is not a dotted path of field names (e.g. 'customer.id')"
        )
    return parts


def _field_names(obj: Any) -> list[str] | None:
    """The fields an object has, or None when it is not a record (a str, a number)."""
    if isinstance(obj, BaseModel):
        return list(type(obj).model_fields)
    if isinstance(obj, Mapping):
        return [str(k) for k in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [f.name for f in dataclasses.fields(obj)]
    return None


def _get(obj: Any, name: str) -> Any:
    return obj[name] if isinstance(obj, Mapping) else getattr(obj, name)


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _resolve(answer: Any, path: tuple[str, ...]) -> list[tuple[str, Any]]:
    """``(where, value)`` for every value at ``path``, lists walked; ``None`` met on the way
    ends that branch with a ``None`` value. Rejects naming the field when it is missing."""
    current: list[tuple[str, Any]] = [("", answer)]
    for depth, part in enumerate(path):
        found: list[tuple[str, Any]] = []
        for where, value in current:
            items = list(enumerate(value)) if _is_list(value) else [(None, value)]
            for index, item in items:
                at = f"{where}[{index}]" if index is not None else where
                if item is None:
                    found.append((at, None))
                    continue
                names = _field_names(item)
                if names is None or part not in names:
                    raise _missing(path, depth, at, item, names)
                found.append((f"{at}.{part}" if at else part, _get(item, part)))
        current = found
    return current


def _missing(
    path: tuple[str, ...], depth: int, at: str, item: Any, names: list[str] | None
) -> _gates.Rejected:
    wanted = ".".join(path)
    if names is None:
        return _reject(
            f"the answer has no field {wanted!r}: {at or 'the answer'} is a "
            f"{type(item).__name__}, not a model with field {path[depth]!r}"
        )
    where = f"{at} has" if at else "the answer has"
    has = ", ".join(names) if names else "none"
    return _reject(f"the answer has no field {wanted!r} ({where} fields: {has})")


def _texts(
    values: Iterable[tuple[str, Any]], *, field: str, strict: bool = True
) -> Iterator[tuple[str, str]]:
    """The strings in ``values``: strings, lists of them, the string fields of models.

    ``None`` is skipped. With ``strict``, a value holding no text (a number) is a rejection.
    """
    for where, value in values:
        if value is None:
            continue
        if isinstance(value, str):
            yield where, value
        elif _is_list(value):
            yield from _texts(
                ((f"{where}[{i}]", v) for i, v in enumerate(value)), field=field, strict=strict
            )
        elif (names := _field_names(value)) is not None:
            yield from _texts(
                ((f"{where}.{n}" if where else n, _get(value, n)) for n in names),
                field=field,
                strict=False,
            )
        elif strict:
            raise _reject(
                f"{where or field} holds a {type(value).__name__}, not text "
                "(a str, a list of str, or models with str fields)"
            )


def _all_texts(answer: Any) -> list[tuple[str, str]]:
    """Every string field of the answer, nested models and lists included."""
    return list(_texts([("", answer)], field="answer", strict=False))


def _check_path(model: type[Any], path: tuple[str, ...], gate: str) -> None:
    """Raise ConfigurationError when ``model`` (a pydantic class) cannot have ``path``."""
    candidates: list[Any] = [model]
    for depth, part in enumerate(path):
        models = _model_classes(candidates)
        if not models:
            return  # a dict, Any or the like: nothing to check against
        following: list[Any] = []
        for cls in models:
            fields = cls.model_fields
            if part not in fields:
                where = ".".join(path[:depth]) or cls.__name__
                has = ", ".join(fields) or "none"
                raise ConfigurationError(
                    f"{gate}: the response model has no field {'.'.join(path)!r} "
                    f"({where} has fields: {has})"
                )
            following.append(fields[part].annotation)
        candidates = following


def _model_classes(annotations: Iterable[Any]) -> list[type[BaseModel]]:
    """The pydantic classes an annotation can hold (through Optional, unions, lists)."""
    found: list[type[BaseModel]] = []
    pending = list(annotations)
    while pending:
        annotation = pending.pop()
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.append(annotation)
            continue
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            pending.append(typing.get_args(annotation)[0])
        elif origin in (typing.Union, types.UnionType, list, tuple, Sequence, set, frozenset):
            pending.extend(a for a in typing.get_args(annotation) if a is not Ellipsis)
    return found


class _FieldGate:
    """Shared by the gates that read one field."""

    path: tuple[str, ...]
    name: str

    @property
    def field(self) -> str:
        """The dotted path this gate reads."""
        return ".".join(self.path)

    def check_response_model(self, response_model: type[Any]) -> None:
        """Raise :class:`~escalate.ConfigurationError` if ``response_model`` (a pydantic
        class) has no field at this gate's path; fields typed ``dict`` or ``Any`` pass."""
        _check_path(response_model, self.path, self.name)


# --- length ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Length(_FieldGate):
    """A text field's length is within a bound (see :func:`min_length`, :func:`max_length`)."""

    path: tuple[str, ...]
    n: int
    unit: Unit
    bound: Literal["min", "max"]
    name: str

    def __call__(self, answer: Any, context: GateContext, /) -> None:
        short: list[str] = []
        values = _resolve(answer, self.path)
        if self.bound == "min":  # a missing text is as short as can be
            values = [(where, "" if value is None else value) for where, value in values]
        for where, text in _texts(values, field=self.field):
            size = len(text.split()) if self.unit == "words" else len(text.strip())
            if (size < self.n) if self.bound == "min" else (size > self.n):
                short.append(f"{where} is {size} {self.unit}")
        if not short:
            return
        need = "at least" if self.bound == "min" else "at most"
        raise _reject(f"{_listing(short)}; needs {need} {self.n} {self.unit}")


def _length(
    kind: Literal["min", "max"], field: str, n: int, unit: Unit, name: str | None
) -> Length:
    gate = f"{kind}_length"
    path = _split_path(field, gate)
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


# --- references -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cites(_FieldGate):
    """The field holds enough references, and only allowed ones (see :func:`cites`)."""

    path: tuple[str, ...]
    pattern: re.Pattern[str] | None
    allowed: Collection[Any] | None
    min_count: int
    name: str

    def references(self, answer: Any) -> list[Any]:
        """The distinct references the answer makes at this field, in order."""
        values = _resolve(answer, self.path)
        found: list[Any] = []
        if self.pattern is not None:
            for _, text in _texts(values, field=self.field):
                for match in self.pattern.finditer(text):
                    found.append(match.group(1) if self.pattern.groups else match.group(0))
        else:
            for _, value in _leaves(values):
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
                listed = _listing([repr(r) for r in bad])
                raise _reject(f"{self.field} cites {len(bad)} id(s) not allowed: {listed}")
        if len(refs) < self.min_count:
            what = f"matching the pattern {self.pattern.pattern}" if self.pattern else ""
            raise _reject(
                f"{self.field} cites {len(refs)} distinct reference(s) {what}".rstrip()
                + f"; needs at least {self.min_count}"
            )


def _leaves(values: Iterable[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    for where, value in values:
        if _is_list(value):
            yield from _leaves((f"{where}[{i}]", v) for i, v in enumerate(value))
        else:
            yield where, value


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
    path = _split_path(field, "cites")
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
class KnownIds(_FieldGate):
    """Every id at the field exists (see :func:`known_ids`)."""

    path: tuple[str, ...]
    known: Collection[Any] | Callable[[Any], bool]
    name: str

    def __call__(self, answer: Any, context: GateContext, /) -> None:
        ids = [v for _, v in _leaves(_resolve(answer, self.path)) if v is not None]
        known = self.known
        if callable(known) and not isinstance(known, Collection):
            unknown = [i for i in ids if not known(i)]
        else:
            unknown = [i for i in ids if i not in known]
        unknown = list(dict.fromkeys(unknown))
        if unknown:
            raise _reject(f"unknown id(s) at {self.field}: {_listing([repr(u) for u in unknown])}")


def known_ids(
    field: str, known: Collection[str] | Callable[[str], bool], *, name: str | None = None
) -> KnownIds:
    """Reject an answer holding an id that does not exist: a hallucinated order number,
    customer, SKU or document id.

    ``field`` holds one id or a list of them (``None`` is skipped). ``known`` is the set of
    real ids, or a lookup ``fn(id) -> bool`` (a database query; keep it fast, it runs on
    every answer). The reason lists the unknown ids, at most five, then "and N more".
    """
    path = _split_path(field, "known_ids")
    if not callable(known) or isinstance(known, Collection):
        _check_ids("known_ids", known, "known")
        known = _freeze(known)
    return KnownIds(path, known, name or f"known_ids({field})")


# --- phrases --------------------------------------------------------------------------------

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
            _check_path(response_model, self.path, self.name)

    def __call__(self, answer: Any, context: GateContext, /) -> None:
        if self.path is None:
            texts = _all_texts(answer)
        else:
            texts = list(_texts(_resolve(answer, self.path), field=".".join(self.path)))
        hits: list[str] = []
        for where, text in texts:
            match = self.regex.search(text.translate(_APOSTROPHES))
            if match:
                hits.append(f"{where or 'the answer'} says {match.group(0)!r}")
        if hits:
            raise _reject(f"{self.what}: {_listing(hits, 3)}")


def _phrase_gate(
    kind: str, field: str | None, phrases: Iterable[str], what: str, name: str | None
) -> PhraseGate:
    path = _split_path(field, kind) if field is not None else None
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


# --- completeness ---------------------------------------------------------------------------


def _cut_off(completion: Any) -> str | None:
    """Why the completion was cut off at the token limit, or None."""
    choices = getattr(completion, "choices", None)
    if choices:
        if getattr(choices[0], "finish_reason", None) == "length":
            return "finish_reason is 'length'"
        return None
    if getattr(completion, "stop_reason", None) == "max_tokens":
        return "stop_reason is 'max_tokens'"
    return None


@dataclass(frozen=True)
class Complete:
    """The answer was not cut off and says something (see :func:`complete`)."""

    name: str = "complete"

    def __call__(self, answer: Any, context: GateContext, /) -> None:
        why = _cut_off(context.completion)
        if why is not None:
            raise _reject(f"the output was cut off at the token limit ({why})")
        texts = _all_texts(answer)
        if texts and all(not text.strip() for _, text in texts):
            fields = _listing([where for where, _ in texts])
            raise _reject(f"every text field is empty ({fields})")


def complete(*, name: str | None = None) -> Complete:
    """Reject an answer that was cut off at the token limit (OpenAI ``finish_reason ==
    "length"``, Anthropic ``stop_reason == "max_tokens"``) or whose string fields are all
    empty or whitespace.

    In instructor's tool modes a cut-off answer usually fails before any gate runs (and
    the receipt says ``truncated``); this gate catches the rest.
    """
    return Complete(name or "complete")


@dataclass(frozen=True)
class NotEmpty(_FieldGate):
    """The field holds something (see :func:`not_empty`)."""

    path: tuple[str, ...]
    name: str

    def __call__(self, answer: Any, context: GateContext, /) -> None:
        empty: list[str] = []
        for where, value in _resolve(answer, self.path):
            if value is None or (isinstance(value, str) and not value.strip()):
                empty.append(where)
            elif _is_list(value):
                if not value:
                    empty.append(f"{where} (an empty list)")
                empty.extend(
                    f"{where}[{i}]"
                    for i, v in enumerate(value)
                    if isinstance(v, str) and not v.strip()
                )
        if empty:
            raise _reject(f"empty: {_listing(empty)}")


def not_empty(field: str, *, name: str | None = None) -> NotEmpty:
    """Reject when ``field`` is ``None``, blank (empty or whitespace), an empty list, or a
    list holding a blank string."""
    return NotEmpty(_split_path(field, "not_empty"), name or f"not_empty({field})")


# --- confidence -----------------------------------------------------------------------------

_JSON_MODES = frozenset({"json_mode", "json_schema_mode", "markdown_json_mode"})


def _quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values``, interpolated linearly between order statistics."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _token_logprobs(completion: Any) -> list[float] | None:
    choices = getattr(completion, "choices", None)
    if not choices:
        return None
    logprobs = getattr(choices[0], "logprobs", None)
    content = getattr(logprobs, "content", None)
    if not content:
        return None
    return [float(token.logprob) for token in content]


def _deployments_of(tier: Any) -> list[Any]:
    from escalate._tiers import Tier

    if not isinstance(tier, Tier):
        return []
    return [tier, *(Tier(f) if isinstance(f, str) else f for f in tier.fallbacks)]


@dataclass(frozen=True)
class LogprobConfidence:
    """The model's own token probabilities are high enough (see :func:`logprob_confidence`)."""

    threshold: float
    statistic: Statistic
    quantile: float
    name: str

    request_kwargs: ClassVar[Mapping[str, Any]] = types.MappingProxyType({"logprobs": True})
    """Merged into the tier's requests: OpenAI returns logprobs only when asked."""

    @property
    def label(self) -> str:
        """How reasons name the statistic: ``p10``, ``mean``, ``min``."""
        if self.statistic == "quantile":
            return f"p{self.quantile * 100:g}"
        return self.statistic

    def check_tier(self, tier: Any) -> None:
        """Refuse, when the decorator is applied, a tier that can return no logprobs."""
        for config in _deployments_of(tier):
            provider = config.model.partition("/")[0]
            if provider == "anthropic":
                raise ConfigurationError(
                    f"{self.name} cannot gate tier {config.model!r}: Anthropic's API returns "
                    "no logprobs"
                )
            mode = getattr(config.mode, "value", config.mode)
            if mode not in _JSON_MODES:
                raise ConfigurationError(
                    f"{self.name} cannot gate tier {config.model!r} in instructor mode "
                    f"{mode or 'tool_call'}: OpenAI returns no logprobs for tool-call "
                    "arguments: use Tier(..., mode=instructor.Mode.JSON_SCHEMA)"
                )

    def score(self, logprobs: Sequence[float]) -> float:
        """The statistic of the token probabilities ``exp(logprob)``."""
        probabilities = [math.exp(min(lp, 0.0)) for lp in logprobs]
        if self.statistic == "mean":
            return math.fsum(probabilities) / len(probabilities)
        if self.statistic == "min":
            return min(probabilities)
        return _quantile(probabilities, self.quantile)

    def __call__(self, answer: Any, context: GateContext, /) -> float:
        logprobs = _token_logprobs(context.completion)
        if logprobs is None:
            raise _reject(
                "the completion carries no logprobs (they are requested with logprobs=True "
                "and come only with JSON-mode content, never with tool calls)"
            )
        value = self.score(logprobs)
        if value < self.threshold:
            raise _reject(
                f"confidence {value:.2f} ({self.label} of {len(logprobs)} tokens) "
                f"< {self.threshold:.2f}",
                score=value,
            )
        return value


def logprob_confidence(
    threshold: float,
    *,
    statistic: Statistic = "quantile",
    quantile: float = 0.1,
    name: str | None = None,
) -> LogprobConfidence:
    """Reject an answer whose tokens the model itself found unlikely.

    The token probabilities are ``exp(logprob)`` over the answer's tokens
    (``completion.choices[0].logprobs.content``); the score is their ``statistic``:

    - ``"quantile"`` (default): the ``quantile`` (0.1: the 10th percentile), so a handful
      of doubtful tokens, a guessed number or name, pull it down;
    - ``"mean"``: biased by length: a long answer of confident boilerplate (JSON keys,
      punctuation, copied text) averages out the few tokens that matter;
    - ``"min"``: the single least likely token; strict, and noisy on long answers.

    The score is kept in the receipt (``attempt.scores[name]``, default name
    ``logprob_confidence``); below ``threshold`` the answer is rejected with a reason such
    as ``"confidence 0.62 (p10 of 57 tokens) < 0.80"``.

    It costs nothing extra (``logprobs=True`` is added to the tier's requests), but only
    OpenAI (and OpenAI-compatible servers) return logprobs, and only for content: give the
    tier ``mode=instructor.Mode.JSON_SCHEMA`` (or ``JSON``, ``MD_JSON``). Other tiers are
    refused when the decorator is applied. Note that the structural tokens of the JSON
    count too.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ConfigurationError(
            f"logprob_confidence: threshold must be a number, got {threshold!r}"
        )
    if not 0 <= threshold <= 1:
        raise ConfigurationError(
            f"logprob_confidence: threshold is a probability in [0, 1], got {threshold!r}"
        )
    if statistic not in ("mean", "min", "quantile"):
        raise ConfigurationError(
            f"logprob_confidence: statistic must be 'mean', 'min' or 'quantile', got {statistic!r}"
        )
    if (
        isinstance(quantile, bool)
        or not isinstance(quantile, (int, float))
        or not 0 <= quantile <= 1
    ):
        raise ConfigurationError(
            f"logprob_confidence: quantile must be in [0, 1], got {quantile!r}"
        )
    return LogprobConfidence(
        float(threshold), statistic, float(quantile), name or "logprob_confidence"
    )


@dataclass(frozen=True)
class SelfReported(_FieldGate):
    """The model's own stated confidence is high enough (see :func:`self_reported`)."""

    path: tuple[str, ...]
    threshold: float
    name: str

    def __call__(self, answer: Any, context: GateContext, /) -> float:
        values = _resolve(answer, self.path)
        if len(values) != 1:
            raise _reject(f"{self.field} must hold one number, found {len(values)} values")
        where, value = values[0]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            shown = "missing (None)" if value is None else f"a {type(value).__name__}"
            raise _reject(f"{where} is {shown}, not a confidence number")
        number = float(value)
        if not 0 <= number <= 100 or math.isnan(number):
            raise _reject(f"{where} is {value!r}: a confidence is 0..1 (or 0..100)")
        confidence = number / 100 if number > 1 else number
        if confidence < self.threshold:
            raise _reject(
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
    path = _split_path(field, "self_reported")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ConfigurationError(f"self_reported: threshold must be a number, got {threshold!r}")
    if not 0 <= threshold <= 1:
        raise ConfigurationError(f"self_reported: threshold must be in [0, 1], got {threshold!r}")
    return SelfReported(path, float(threshold), name or "self_reported")
