"""The shape of an answer: what instructor is asked for, and the value the caller gets.

Any type pydantic validates is a response model: a ``BaseModel`` class is asked for as it
is; anything else (``str``, ``int``, ``bool``, ``Literal[...]``, ``list[Model]``, unions,
discriminated ones too, ``Annotated[str, AfterValidator(...)]``) is asked for inside a
one-field wrapper, ``{"answer": ...}``, so every provider and every instructor mode sees
an object, and a value that fails its validators fails validation like any other answer.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, TypeAdapter, create_model

from escalate.exceptions import ConfigurationError

__all__ = ["AnswerShape", "Wrapped", "shape_of"]


class Wrapped(BaseModel):
    """The base of every one-field wrapper: ``{"answer": <the declared type>}``."""


@dataclass(frozen=True, eq=False)
class AnswerShape:
    """One response model, as the engine and the call path need it."""

    declared: Any
    """What the user gave as ``response_model``."""
    request_model: type[BaseModel]
    """What instructor is asked to fill."""
    wrapped: bool
    """Whether the value sits in the wrapper's ``answer`` field."""

    def value_of(self, parsed: Any) -> Any:
        """The caller's value from instructor's parsed answer: the wrapped value, or the
        user's own class rebuilt from instructor's subclass of it (already validated: no
        second validation), so that it compares, dumps and pickles as the user expects."""
        if self.wrapped:
            return parsed.answer
        model = self.request_model
        if type(parsed) is model or not isinstance(parsed, model):
            return parsed
        return model.model_construct(
            _fields_set=parsed.model_fields_set,
            **{name: getattr(parsed, name) for name in type(parsed).model_fields},
        )

    @property
    def name(self) -> str:
        """How messages and errors name the answer's type."""
        if not self.wrapped:
            return self.request_model.__name__
        return _type_name(self.declared)


def shape_of(response_model: object) -> AnswerShape:
    """The shape of ``response_model``, or a ConfigurationError when pydantic cannot
    validate it (checked once, when the decorator is applied)."""
    if isinstance(response_model, type) and issubclass(response_model, BaseModel):
        return AnswerShape(response_model, response_model, wrapped=False)
    try:
        TypeAdapter[Any](response_model)  # type: ignore[arg-type]
    except Exception as error:
        raise ConfigurationError(
            f"response_model {response_model!r} is not a type pydantic can validate "
            f"({type(error).__name__}: {error}); give a BaseModel subclass, str, int, "
            "float, bool, a Literal, list[Model], a union or an Annotated type"
        ) from None
    return AnswerShape(response_model, _wrapper(response_model), wrapped=True)


def _wrapper(declared: Any) -> type[BaseModel]:
    try:
        return _cached_wrapper(declared)
    except TypeError:  # an unhashable annotation (a validator holding a list): no cache
        return _build_wrapper(declared)


@functools.lru_cache(maxsize=256)
def _cached_wrapper(declared: Any) -> type[BaseModel]:
    return _build_wrapper(declared)


def _build_wrapper(declared: Any) -> type[BaseModel]:
    model: type[BaseModel] = create_model(
        "Answer",
        __base__=Wrapped,
        __doc__=f"The answer, as {_type_name(declared)}.",
        answer=(declared, Field(description="The answer.")),
    )
    return model


def _type_name(declared: Any) -> str:
    return getattr(declared, "__name__", None) or repr(declared).replace("typing.", "")
