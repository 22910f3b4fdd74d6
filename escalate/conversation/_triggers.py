"""Triggers back up the ladder, and the rules that step back down.

A trigger is any callable of the conversation's history (the messages so far, the new
user message last) returning a reason (``str``), ``True``, or a falsy value when it does
not fire. It runs before the turn; when one fires, the turn starts on a stronger rung (the
strongest by default). Users write their own as plain functions.

The built-ins are cheap and mechanical: phrase patterns over the new user message (and,
for missing information, over the last reply). :func:`low_confidence` is the model's own
signal instead: it lets the lighter rungs ask to escalate (``self_escalation``) and fires
when one did, with the model's reason.

A step-down rule decides when an escalated stretch ends: :func:`when_settled` (the
default: the stronger tier's last reply asks the user nothing, or ``max_turns`` passed) or
:func:`after_turns`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from escalate._self_escalation import SelfEscalation

__all__ = [
    "Message",
    "PhraseTrigger",
    "StepDown",
    "TriggerFn",
    "after_turns",
    "constraints_conflict",
    "deep_work",
    "goal_changed",
    "high_stakes",
    "last_text",
    "low_confidence",
    "missing_information",
    "trigger_name",
    "when_settled",
]

Message = Mapping[str, Any]
TriggerFn = Callable[[Sequence[Message]], "str | bool | None"]


def _text(message: Message) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def last_text(history: Sequence[Message], role: str = "user") -> str:
    """The text of the last message of ``role`` ("" if none)."""
    for message in reversed(history):
        if message.get("role") == role:
            return _text(message)
    return ""


def trigger_name(trigger: object) -> str:
    """How receipts name a trigger: its ``name``, else its function's ``__name__``."""
    name = getattr(trigger, "name", None) or getattr(trigger, "__name__", None)
    return str(name) if name else type(trigger).__name__


@dataclass(frozen=True)
class PhraseTrigger:
    """Fires when a pattern matches the last message of ``role``; the reason names the
    words matched."""

    name: str
    pattern: re.Pattern[str]
    what: str
    role: Literal["user", "assistant"] = "user"
    climb: Literal["top", "one"] = "top"
    """``top``: the turn starts on the strongest rung; ``one``: one rung up."""

    def __call__(self, history: Sequence[Message]) -> str | None:
        if self.role == "user" and (not history or history[-1].get("role") != "user"):
            return None  # no new user message this turn (a tool result, say)
        found = self.pattern.search(last_text(history, self.role))
        if found is None:
            return None
        return f"{self.what}: {found.group(0).strip()!r}"


def _phrases(words: Sequence[str]) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(words) + r")", re.IGNORECASE)


_GOAL = (
    r"actually,? (?:let'?s|we|i)",
    r"change of plans?",
    r"new (?:goal|plan|requirement)",
    r"scratch that",
    r"forget (?:that|the|about)",
    r"instead,? (?:let'?s|we)",
    r"(?:we|i) (?:now )?(?:also )?need to (?:switch|pivot|change)",
    r"pivot",
    r"start over",
)
_CONFLICT = (
    r"but (?:it |we |they )?(?:also )?(?:must|mustn'?t|cannot|can'?t|shouldn'?t)",
    r"contradict",
    r"conflicts? with",
    r"at the same time",
    r"on the other hand",
    r"both .{1,40} and .{1,40} at once",
)
_MISSING = (
    r"not sure",
    r"(?:i|we) don'?t know",
    r"unknown",
    r"tbd",
    r"to be (?:decided|confirmed)",
    r"unclear",
    r"it depends",
)
_STAKES = (
    r"secur",
    r"vulnerab",
    r"exploit",
    r"password",
    r"credential",
    r"encrypt",
    r"authenticat",
    r"gdpr",
    r"hipaa",
    r"pci",
    r"legal",
    r"lawsuit",
    r"liabilit",
    r"contract",
    r"compliance",
    r"medical",
    r"diagnos",
    r"dosage",
    r"patient",
)
_DEEP = (
    r"traceback",
    r"stack ?trace",
    r"segfault",
    r"deadlock",
    r"race condition",
    r"memory leak",
    r"root cause",
    r"debug",
    r"architecture",
    r"redesign",
    r"concurren",
    r"scal(?:e|ing) (?:to|out|up)",
)


def goal_changed(*, extra: Sequence[str] = ()) -> PhraseTrigger:
    """The user changes the goal ("actually, let's ...", "change of plan", "scratch that")."""
    return PhraseTrigger("goal_changed", _phrases((*_GOAL, *extra)), "the goal changed")


def constraints_conflict(*, extra: Sequence[str] = ()) -> PhraseTrigger:
    """The user adds a constraint at odds with another ("but it must not", "conflicts with")."""
    return PhraseTrigger(
        "constraints_conflict", _phrases((*_CONFLICT, *extra)), "constraints conflict"
    )


def missing_information(*, extra: Sequence[str] = ()) -> PhraseTrigger:
    """Information is missing that cannot be safely inferred ("not sure", "TBD", "unknown")."""
    return PhraseTrigger(
        "missing_information", _phrases((*_MISSING, *extra)), "information is missing"
    )


def high_stakes(*, extra: Sequence[str] = ()) -> PhraseTrigger:
    """The topic turns high-stakes: security, legal, medical, compliance."""
    return PhraseTrigger("high_stakes", _phrases((*_STAKES, *extra)), "high stakes")


def deep_work(*, extra: Sequence[str] = ()) -> PhraseTrigger:
    """A deep debugging or architecture turn (a traceback, a race, a migration)."""
    return PhraseTrigger("deep_work", _phrases((*_DEEP, *extra)), "deep debugging or design")


@dataclass(frozen=True)
class LowConfidence:
    """The lighter rung's own signal: it may answer or ask to escalate
    (``self_escalation``); when it asks, the turn moves up within the turn, and this
    trigger fires with the model's reason, holding the conversation up like any other."""

    option: SelfEscalation = field(default_factory=SelfEscalation)
    name: str = "low_confidence"

    def __call__(self, history: Sequence[Message]) -> None:
        return None  # fires on the turn's receipt, not on the history


def low_confidence(option: SelfEscalation | None = None) -> LowConfidence:
    """Offer the lighter rungs the escalation option; fires when a model takes it."""
    return LowConfidence(option or SelfEscalation())


@runtime_checkable
class StepDown(Protocol):
    """When an escalated stretch ends: called after each turn on the raised rung with the
    history (that turn's reply last) and how many turns the stretch has lasted."""

    def __call__(self, history: Sequence[Message], turns_up: int, /) -> bool: ...


@dataclass(frozen=True)
class after_turns:
    """Step down after ``turns`` turns on the raised rung."""

    turns: int = 1

    def __call__(self, history: Sequence[Message], turns_up: int, /) -> bool:
        return turns_up >= self.turns


_ASKS = re.compile(r"\?\s*$|\?\s*\n")


@dataclass(frozen=True)
class when_settled:
    """Step down once the raised rung's last reply asks the user nothing (the ambiguity is
    resolved, the plan set), or after ``max_turns`` turns up whatever it asked."""

    max_turns: int = 3

    def __call__(self, history: Sequence[Message], turns_up: int, /) -> bool:
        if turns_up >= self.max_turns:
            return True
        return _ASKS.search(last_text(history, "assistant")) is None
