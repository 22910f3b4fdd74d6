"""Field paths: how the field gates find the values they read in an answer.

Fields are named by dotted paths into the answer: ``"summary"``, ``"customer.id"``. A field
may hold a string, a list of strings, a nested model, or a list of models; lists are walked
(``"items.sku"`` checks the ``sku`` of every item) and reasons name the element
(``items[2].sku``). A path the answer does not have is a rejection whose reason names the
field and the fields the answer has, so a typo shows in the first receipt;
:meth:`FieldGate.check_response_model` finds it earlier still, from the response model.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from escalate.exceptions import ConfigurationError
from escalate.gates._protocol import Rejected

__all__ = [
    "FieldGate",
    "all_texts",
    "check_path",
    "field_names",
    "is_list",
    "leaves",
    "listing",
    "resolve",
    "split_path",
    "texts",
]

MAX_LISTED = 5
"""How many items a reason lists before "and N more"."""


def listing(items: Sequence[str], limit: int = MAX_LISTED) -> str:
    """``a, b, c, d, e and 3 more``."""
    shown = ", ".join(items[:limit])
    rest = len(items) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown


def split_path(field: str, gate: str) -> tuple[str, ...]:
    """``"customer.id"`` as ``("customer", "id")``; a ConfigurationError naming ``gate``
    when it is no dotted path of field names."""
    if not isinstance(field, str) or not field.strip():
        raise ConfigurationError(f"{gate}: field must be a dotted path such as 'summary'")
    parts = tuple(field.split("."))
    if any(not p.isidentifier() for p in parts):
        raise ConfigurationError(
            f"{gate}: field {field!r} is not a dotted path of field names (e.g. 'customer.id')"
        )
    return parts


def field_names(obj: Any) -> list[str] | None:
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


def is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def resolve(answer: Any, path: tuple[str, ...]) -> list[tuple[str, Any]]:
    """``(where, value)`` for every value at ``path``, lists walked; ``None`` met on the way
    ends that branch with a ``None`` value. Rejects naming the field when it is missing."""
    current: list[tuple[str, Any]] = [("", answer)]
    for depth, part in enumerate(path):
        found: list[tuple[str, Any]] = []
        for where, value in current:
            items = list(enumerate(value)) if is_list(value) else [(None, value)]
            for index, item in items:
                at = f"{where}[{index}]" if index is not None else where
                if item is None:
                    found.append((at, None))
                    continue
                names = field_names(item)
                if names is None or part not in names:
                    raise _missing(path, depth, at, item, names)
                found.append((f"{at}.{part}" if at else part, _get(item, part)))
        current = found
    return current


def _missing(
    path: tuple[str, ...], depth: int, at: str, item: Any, names: list[str] | None
) -> Rejected:
    wanted = ".".join(path)
    if names is None:
        return Rejected(
            f"the answer has no field {wanted!r}: {at or 'the answer'} is a "
            f"{type(item).__name__}, not a model with field {path[depth]!r}"
        )
    where = f"{at} has" if at else "the answer has"
    has = ", ".join(names) if names else "none"
    return Rejected(f"the answer has no field {wanted!r} ({where} fields: {has})")


def texts(
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
        elif is_list(value):
            yield from texts(
                ((f"{where}[{i}]", v) for i, v in enumerate(value)), field=field, strict=strict
            )
        elif (names := field_names(value)) is not None:
            yield from texts(
                ((f"{where}.{n}" if where else n, _get(value, n)) for n in names),
                field=field,
                strict=False,
            )
        elif strict:
            raise Rejected(
                f"{where or field} holds a {type(value).__name__}, not text "
                "(a str, a list of str, or models with str fields)"
            )


def all_texts(answer: Any) -> list[tuple[str, str]]:
    """Every string field of the answer, nested models and lists included."""
    return list(texts([("", answer)], field="answer", strict=False))


def check_path(model: type[Any], path: tuple[str, ...], gate: str) -> None:
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


class FieldGate:
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
        check_path(response_model, self.path, self.name)


def leaves(values: Iterable[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    """``(where, value)`` for every non-list value, lists walked and their elements named."""
    for where, value in values:
        if is_list(value):
            yield from leaves((f"{where}[{i}]", v) for i, v in enumerate(value))
        else:
            yield where, value
