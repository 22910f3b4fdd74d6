"""Evaluation items, read from code or a JSONL file, and how an answer is judged right."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel

__all__ = ["Grader", "Item", "load_items"]


@dataclass(frozen=True)
class Item:
    """One evaluation item: the escalating function's arguments and the expected output."""

    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    expected: Any = None
    id: str | None = None


Grader = Callable[[Any, Item], bool]
"""``grade(answer, item) -> bool``: whether the answer to ``item`` is right."""


def load_items(path: str | os.PathLike[str]) -> list[Item]:
    """Items from a JSONL file, one object a line: ``{"args": [...], "kwargs": {...},
    "expected": ..., "id": ...}``; ``{"input": x}`` is short for ``{"args": [x]}``."""
    items = []
    text = Path(path).read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not JSON: {error}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}:{number}: an item is a JSON object, got {line[:60]!r}")
        args = data.get("args", [data["input"]] if "input" in data else [])
        kwargs = data.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ValueError(f"{path}:{number}: 'args' must be a list and 'kwargs' an object")
        item_id = data.get("id")
        items.append(
            Item(
                tuple(args),
                kwargs,
                data.get("expected"),
                str(item_id) if item_id is not None else None,
            )
        )
    return items


def _field(answer: Any, path: str) -> Any:
    value = answer
    for name in path.split("."):
        value = value[name] if isinstance(value, Mapping) else getattr(value, name)
    return value


def _same(value: Any, expected: Any) -> bool:
    """Equality as a JSON evaluation set means it: ``Decimal("18") == 18 == "18.0"``, and a
    model equals its JSON dump."""
    if isinstance(value, BaseModel) and not isinstance(expected, BaseModel):
        return bool(value.model_dump(mode="json") == expected)
    try:
        if value == expected:
            return True
    except Exception:
        return False
    numeric = (int, float, Decimal, str)
    if (
        isinstance(value, numeric)
        and isinstance(expected, numeric)
        and not isinstance(value, bool)
        and not isinstance(expected, bool)
    ):
        try:
            return Decimal(str(value).strip()) == Decimal(str(expected).strip())
        except ArithmeticError:
            return False
    return False


def _grader(grade: Grader | None, expected_field: str | None) -> Grader:
    if grade is not None and expected_field is not None:
        raise ValueError("give grade= or expected_field=, not both")
    if grade is not None:
        return grade
    if expected_field is not None:
        return lambda answer, item: _same(_field(answer, expected_field), item.expected)
    return lambda answer, item: _same(answer, item.expected)
