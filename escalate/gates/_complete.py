"""Whether the answer is whole: :func:`complete` (not cut off at the token limit, not
blank).

Mechanical: it reads the finish reason of the raw completion, OpenAI's or Anthropic's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from escalate.gates._fields import all_texts, listing
from escalate.gates._protocol import Gate, GateContext, Rejected

__all__ = ["Complete", "complete"]


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
            raise Rejected(f"the output was cut off at the token limit ({why})")
        texts = all_texts(answer)
        if texts and all(not text.strip() for _, text in texts):
            fields = listing([where for where, _ in texts])
            raise Rejected(f"every text field is empty ({fields})")


def complete(*, name: str | None = None) -> Complete:
    """Reject an answer that was cut off at the token limit (OpenAI ``finish_reason ==
    "length"``, Anthropic ``stop_reason == "max_tokens"``) or whose string fields are all
    empty or whitespace.

    In instructor's tool modes a cut-off answer usually fails before any gate runs (and
    the receipt says ``truncated``); this gate catches the rest.
    """
    return Complete(name or "complete")


if TYPE_CHECKING:  # mypy checks the gate has the capabilities the engine uses
    _Gate: type[Gate] = Complete
