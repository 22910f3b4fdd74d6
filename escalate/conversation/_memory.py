"""The handoff memory: a short, structured artifact handed to a tier when the tier changes.

The strongest rung writes it (a structured answer through instructor, on the one call
path) after the framing turns, and rewrites it when an escalated stretch settles and every
``update_every`` turns. It is injected as one system block into the request of a turn
whose tier differs from the tier that answered the turn before, and into no other request.
Lighter tiers are told to flag a violated assumption and to ask rather than invent.

Tokens are estimated as ``ceil(characters / 4)``: the budget is a bound on the block the
tiers are sent, not a bill (the receipts carry the billed tokens).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from escalate.exceptions import ConfigurationError
from escalate.gates import Rejected

__all__ = [
    "MARKER",
    "Handoff",
    "HandoffMemory",
    "estimate_tokens",
    "handoff_block",
    "trim",
    "writer_messages",
]

MARKER = "[handoff memory]"
"""The first words of every injected block: what a test looks for in request bodies."""


class HandoffMemory(BaseModel):
    """What a tier must know when it takes over a conversation. Subclass it to add fields;
    the writer is asked for the subclass."""

    goal: str = Field(default="", description="The user's goal, in one sentence.")
    constraints: list[str] = Field(default_factory=list, description="Hard requirements.")
    non_goals: list[str] = Field(default_factory=list, description="What is out of scope.")
    assumptions: list[str] = Field(
        default_factory=list, description="What was assumed without the user saying so."
    )
    decisions: list[str] = Field(default_factory=list, description="Decisions so far.")
    open_questions: list[str] = Field(
        default_factory=list, description="Open questions and unknowns."
    )
    output_format: str = Field(default="", description="The format contract for answers, if any.")

    def is_empty(self) -> bool:
        return not any(self.model_dump().values())


def estimate_tokens(text: str) -> int:
    """``ceil(len(text) / 4)``: the estimate the budget is checked with."""
    return math.ceil(len(text) / 4)


_LIGHTER_RULES = (
    "You are taking over this conversation from another model. Keep to the memory above. "
    "If anything the user says contradicts an assumption or a constraint in it, say so "
    "plainly before answering. If you need information that is not in the conversation or "
    "the memory, ask the user for it instead of inventing it."
)


def render(memory: BaseModel) -> str:
    """The memory as compact text: one line per field, lists joined with ``; ``."""
    lines = []
    for name, value in memory.model_dump().items():
        if value in ("", [], None, {}):
            continue
        shown = "; ".join(map(str, value)) if isinstance(value, list) else str(value)
        lines.append(f"{name.replace('_', ' ')}: {shown}")
    return "\n".join(lines) or "(empty)"


def handoff_block(memory: BaseModel, *, from_tier: str | None, lighter: bool) -> str:
    """The system block a tier is sent when it takes over."""
    head = f"{MARKER} handed over from {from_tier}" if from_tier else MARKER
    parts = [head, render(memory)]
    if lighter:
        parts.append(_LIGHTER_RULES)
    return "\n".join(parts)


@dataclass(frozen=True, kw_only=True)
class Handoff:
    """How the memory is kept: ``budget_tokens`` bounds the rendered memory (the writer is
    told, a gate holds it to that, re-asked once, then trimmed); ``update_every`` rewrites
    it after that many turns since the last write (``None``: only at the step-downs)."""

    budget_tokens: int = 400
    update_every: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.budget_tokens, int) or self.budget_tokens < 20:
            raise ConfigurationError(
                f"Handoff.budget_tokens must be an int >= 20, got {self.budget_tokens!r}"
            )
        every = self.update_every
        if every is not None and (not isinstance(every, int) or every < 1):
            raise ConfigurationError(f"Handoff.update_every must be an int >= 1, got {every!r}")

    def gate(self) -> Any:
        """The gate holding a written memory to the budget."""
        budget = self.budget_tokens

        def memory_budget(memory: BaseModel, context: Any) -> float:
            tokens = estimate_tokens(render(memory))
            if tokens > budget:
                raise Rejected(
                    f"the memory is about {tokens} tokens; keep it within {budget}: "
                    "shorter items, fewer of them"
                )
            return float(tokens)

        return memory_budget


_WRITER = """\
You keep the handoff memory of a conversation: a short, structured note that lets another
model take over without losing what matters. Update it from the conversation below: the
goal in one sentence; hard constraints; non-goals; assumptions made without the user saying
so; decisions so far; open questions and unknowns; the output format contract. Keep only
what a model taking over needs. Stay within {budget} tokens (about {chars} characters)."""


def writer_messages(
    memory: BaseModel, history: Sequence[dict[str, Any]], budget_tokens: int
) -> list[dict[str, Any]]:
    """What the memory writer is sent: its instructions, the memory so far, and the
    conversation since the memory was last written (all of it, the first time)."""
    system = _WRITER.format(budget=budget_tokens, chars=budget_tokens * 4)
    transcript = "\n".join(
        f"{m.get('role')}: {m.get('content')}"
        for m in history
        if m.get("role") in ("user", "assistant") and m.get("content")
    )
    current = json.dumps(memory.model_dump(), ensure_ascii=False)
    return [
        {"role": "system", "content": system},
        {
            "role": "user",
            "content": f"The memory so far: {current}\n\nThe conversation since:\n{transcript}",
        },
    ]


def trim(memory: BaseModel, budget_tokens: int) -> tuple[BaseModel, bool]:
    """The memory cut to the budget (last items of the longest lists first); and whether
    anything was cut."""
    data = memory.model_dump()
    cut = False
    while estimate_tokens(render(type(memory).model_validate(data))) > budget_tokens:
        lists = [k for k, v in data.items() if isinstance(v, list) and v]
        if lists:
            longest = max(lists, key=lambda k: len(data[k]))
            data[longest] = data[longest][:-1]
        else:
            texts = [k for k, v in data.items() if isinstance(v, str) and v]
            if not texts:
                break
            longest = max(texts, key=lambda k: len(data[k]))
            data[longest] = data[longest][: len(data[longest]) // 2]
        cut = True
    return type(memory).model_validate(data), cut
