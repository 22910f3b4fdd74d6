"""Where each turn starts, and why: the schedule, the triggers, the stretch held up after
one fired, and the step back down. Pure decisions: no call is made here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from escalate._receipt import Receipt
from escalate.conversation._ladder import Ladder
from escalate.conversation._receipt import FiredTrigger, TurnSource
from escalate.conversation._triggers import LowConfidence, StepDown, trigger_name

__all__ = ["Steer", "TurnPlan"]

Message = dict[str, Any]


@dataclass
class TurnPlan:
    """One turn before it is sent: its rung, why, and the request's messages."""

    number: int
    rung: int
    rung_name: str
    source: TurnSource
    why: str
    fired: tuple[FiredTrigger, ...]
    previous: str | None
    """The tier that answered the turn before (``None`` on the first turn)."""
    previous_rung: int | None
    new: list[Message]
    messages: list[Message]
    injected: bool = False

    @property
    def changes_tier(self) -> bool:
        return self.previous is not None and self.previous != self.rung_name

    @property
    def step_down(self) -> bool:
        """The turn starts on a lighter rung than the one that answered before."""
        return (
            self.changes_tier and self.previous_rung is not None and self.rung > self.previous_rung
        )

    def inject(self, block: str) -> None:
        """Put ``block`` as a system message just before this turn's new messages."""
        at = len(self.messages) - len(self.new)
        self.messages.insert(at, {"role": "system", "content": block})
        self.injected = True


def _fired(trigger: Callable[..., Any], history: Sequence[Message]) -> FiredTrigger | None:
    said = trigger(history)
    if not said:
        return None
    name = trigger_name(trigger)
    return FiredTrigger(name=name, reason=said if isinstance(said, str) else name)


@dataclass
class Steer:
    """The ladder's state between turns."""

    ladder: Ladder
    triggers: tuple[Callable[..., Any], ...]
    step_down: StepDown
    raised: int | None = None
    turns_up: int = 0
    raised_by: str = ""
    stepped_down: str | None = None
    last_answered: str | None = None
    _names: tuple[str, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        self._names = self.ladder.names

    def plan(self, number: int, history: list[Message], new: list[Message]) -> TurnPlan:
        scheduled = self.ladder.scheduled(number)
        fired = tuple(
            f
            for t in self.triggers
            if not isinstance(t, LowConfidence) and (f := _fired(t, history)) is not None
        )
        if fired:
            rung, source = self._climb(fired, scheduled), "trigger"
            why = "; ".join(f"{f.name}: {f.reason}" for f in fired)
        elif self.raised is not None and self.raised < scheduled:
            rung, source = self.raised, "holding"
            why = f"held up after {self.raised_by} (turn {self.turns_up + 1} up)"
        else:
            self.raised, rung, source = None, scheduled, "schedule"
            why = f"schedule: {self.ladder.phase(scheduled)}"
        previous = self.last_answered
        turn = TurnPlan(
            number=number,
            rung=rung,
            rung_name=self._names[rung],
            source=source,  # type: ignore[arg-type]
            why=why,
            fired=fired,
            previous=previous,
            previous_rung=self._names.index(previous) if previous in self._names else None,
            new=new,
            messages=list(history),
        )
        if source == "schedule" and self.stepped_down and turn.changes_tier:
            turn.source, turn.why = "step_down", f"{self.stepped_down}; {why}"
        self.stepped_down = None
        return turn

    def _climb(self, fired: Sequence[FiredTrigger], scheduled: int) -> int:
        by_name = {trigger_name(t): t for t in self.triggers}
        one_only = all(getattr(by_name.get(f.name), "climb", "top") == "one" for f in fired)
        base = scheduled if self.raised is None else min(self.raised, scheduled)
        target = max(base - 1, 0) if one_only else self.ladder.strongest
        self.raised, self.turns_up = target, 0
        self.raised_by = ", ".join(f.name for f in fired)
        return target

    def after(self, turn: TurnPlan, receipt: Receipt, reply: str) -> tuple[FiredTrigger, ...]:
        """Settle a turn: the model's own escalation requests fire ``low_confidence``, and
        a raised stretch counts the turn and asks the step-down rule whether it is over."""
        self.last_answered = receipt.answered_by
        during = self._low_confidence(turn, receipt)
        if self.raised is None or not (turn.source in ("trigger", "holding") or during):
            return during
        self.turns_up += 1
        history = [*turn.messages, {"role": "assistant", "content": reply}]
        if self.step_down(history, self.turns_up):
            self.stepped_down = (
                f"stepped down after {self.turns_up} turn(s) up ({self.raised_by} settled)"
            )
            self.raised = None
        return during

    def _low_confidence(self, turn: TurnPlan, receipt: Receipt) -> tuple[FiredTrigger, ...]:
        if not any(isinstance(t, LowConfidence) for t in self.triggers):
            return ()
        asked = tuple(
            FiredTrigger(name="low_confidence", reason=m.reason, when="during")
            for m in receipt.moves
            if m.trigger == "self_escalation"
        )
        answered = receipt.answered_by
        if asked and answered in self._names:
            rung = self._names.index(answered)
            if rung < self.ladder.scheduled(turn.number):
                self.raised = rung if self.raised is None else min(self.raised, rung)
                self.turns_up, self.raised_by = 0, "low_confidence"
        return asked

    def failed(self, turn: TurnPlan) -> None:
        """A turn no tier could answer: the ladder stays where it was."""
        self.stepped_down = None
