"""The conversation: a ladder of tiers over many turns, each turn one escalating call.

Each turn is one call of an ``@escalating`` function whose tiers are every rung, cheapest
first, started with ``escalate.options(start_at=<the turn's rung>)``: the turn's rung
answers first and a failing answer escalates, within the turn, to the stronger rungs. The
memory writer is a second escalating function (the strongest rung, ``response_model`` the
memory's class). Both run on the one call path (:class:`~escalate._call.CallPath`), so
the engine decides everything within a turn and this module decides only where each turn
starts, what it is sent, and what the conversation receipt says.

:class:`Conversation` has ``send`` (sync) and ``asend`` (async); they share every
decision (``_Turn``, ``_Steer``) and differ only in how a call is awaited.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from escalate._call import CallPath, path_of
from escalate._config import Tier
from escalate._decorator import escalating
from escalate._receipt import Receipt
from escalate._results import attach
from escalate._retry import Retry
from escalate._routing import options
from escalate.conversation._ladder import Ladder, as_ladder
from escalate.conversation._memory import (
    Handoff,
    HandoffMemory,
    estimate_tokens,
    handoff_block,
    render,
    trim,
    writer_messages,
)
from escalate.conversation._receipt import (
    ConversationReceipt,
    FiredTrigger,
    HandoffRecord,
    MemoryUpdate,
    TurnRecord,
)
from escalate.conversation._steer import Steer, TurnPlan
from escalate.conversation._triggers import LowConfidence, StepDown, when_settled
from escalate.events import Hook
from escalate.exceptions import ConfigurationError, EscalationFailed
from escalate.gates import Gate

__all__ = ["Conversation"]

Message = dict[str, Any]


def _prompt(name: str, is_async: bool) -> Callable[..., Any]:
    """A fresh prompt function (one per call path: the call path is found by it) that
    sends the messages it is given; receipts name it ``escalate.conversation.<name>``."""
    if is_async:

        async def prompt_async(messages: list[Message]) -> list[Message]:
            return messages

        prompt: Callable[..., Any] = prompt_async
    else:

        def prompt_sync(messages: list[Message]) -> list[Message]:
            return messages

        prompt = prompt_sync
    prompt.__module__, prompt.__qualname__, prompt.__name__ = "escalate.conversation", name, name
    return prompt


class Conversation:
    """A chat on a ladder of tiers: strong for the framing turns, lighter after, back up
    when a trigger fires, with a handoff memory injected whenever the tier changes.

    - ``ladder``: ``[(tier, turns), ...]`` strongest first; the last rung's ``turns`` may
      be ``None`` (every later turn).
    - ``triggers``: callables of the history returning a reason when the turn should start
      higher (see :mod:`escalate.conversation`); :func:`low_confidence` among them lets the
      lighter rungs ask to escalate.
    - ``memory``: the starting :class:`HandoffMemory` (or a subclass' instance: the writer
      is asked for that class); ``handoff``: its token budget and update rhythm.
    - ``step_down``: when an escalated stretch ends (default :class:`when_settled`).
    - ``system``: a system prompt for every turn; ``gates``, ``retry``, ``hooks``,
      ``budget_usd``, ``task``, ``tags``: as for ``@escalating``, for every turn.
    """

    def __init__(
        self,
        ladder: Sequence[Any] | Ladder,
        *,
        triggers: Sequence[Callable[..., Any]] = (),
        memory: BaseModel | None = None,
        handoff: Handoff | None = None,
        step_down: StepDown | None = None,
        system: str | None = None,
        gates: Sequence[Gate] = (),
        retry: Retry | None = None,
        hooks: Sequence[Hook] = (),
        budget_usd: Decimal | float | str | None = None,
        task: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self.ladder = as_ladder(ladder)
        self.handoff = handoff or Handoff()
        self.memory: BaseModel = memory if memory is not None else HandoffMemory()
        if not isinstance(self.memory, BaseModel):
            raise ConfigurationError("memory must be a HandoffMemory (or a pydantic model)")
        for trigger in triggers:
            if not callable(trigger):
                raise ConfigurationError(f"a trigger is a callable of the history: {trigger!r}")
        option = next((t.option for t in triggers if isinstance(t, LowConfidence)), None)
        self._settings: dict[str, Any] = {
            "tiers": self.ladder.all_tiers(),
            "gates": gates,
            "retry": retry,
            "hooks": hooks,
            "budget_usd": budget_usd,
            "task": task,
            "tags": tags,
            "self_escalation": option or False,
        }
        self._decorators: dict[Any, Any] = {str: escalating(response_model=str, **self._settings)}
        self._paths: dict[tuple[Any, bool], CallPath] = {}
        self._writers: dict[bool, CallPath] = {}
        self.history: list[Message] = (
            [] if system is None else [{"role": "system", "content": system}]
        )
        self._steer = Steer(self.ladder, tuple(triggers), step_down or when_settled())
        now = datetime.now(UTC)
        self._receipt = ConversationReceipt(
            ladder=tuple((r.name, r.turns) for r in self.ladder.rungs),
            started_at=now,
            updated_at=now,
        )
        self._memory_version = 0
        self._written_at: int | None = None
        self._written_upto = 0
        """How much of the history the memory already covers: a rewrite is sent the memory
        and the messages since, not the whole conversation again."""

    # -- reading -----------------------------------------------------------------------------

    @property
    def receipt(self) -> ConversationReceipt:
        """Every turn, its tier and why, every handoff and memory write, the totals."""
        return self._receipt

    def add(self, *messages: Message) -> None:
        """Append messages without a turn: an assistant's tool calls and the tool results
        your code produced, say. The next turn sends them."""
        self.history.extend(dict(m) for m in messages)

    def feedback(self, turn: int, aligned: bool) -> None:
        """Label turn ``turn``'s answer (1-based): did it get what the user meant?"""
        turns = list(self._receipt.turns)
        turns[turn - 1] = turns[turn - 1].model_copy(update={"feedback": bool(aligned)})
        self._update(turns=tuple(turns))

    def resolve(self, resolved: bool = True) -> None:
        """Mark the task the conversation was for as done (or abandoned)."""
        self._update(resolved=resolved)

    # -- the two faces -----------------------------------------------------------------------

    def send(self, message: str | Message | Sequence[Message], *, response_model: Any = str) -> Any:
        """One turn: the reply (a ``str``, or ``response_model``), carrying its receipt."""
        turn = self._begin(message)
        path = self._path(response_model, is_async=False)
        if (why := self._memory_due(turn)) is not None:
            with options(tags=self._tags(turn, "memory")):
                self._written(why, turn, self._run_writer_sync)
        self._inject(turn)
        with options(start_at=turn.rung_name, reason=turn.why, tags=self._tags(turn)):
            try:
                value, receipt = path.walk_sync((turn.messages,), {})
            except EscalationFailed as failure:
                self._failed(turn, failure.receipt)
                raise
        return self._settle(turn, value, receipt)

    async def asend(
        self, message: str | Message | Sequence[Message], *, response_model: Any = str
    ) -> Any:
        """The async twin of :meth:`send`."""
        turn = self._begin(message)
        path = self._path(response_model, is_async=True)
        if (why := self._memory_due(turn)) is not None:
            with options(tags=self._tags(turn, "memory")):
                written = await self._run_writer_async(self._writer_input())
            self._written(why, turn, lambda _messages: written)
        self._inject(turn)
        with options(start_at=turn.rung_name, reason=turn.why, tags=self._tags(turn)):
            try:
                value, receipt = await path.walk_async((turn.messages,), {})
            except EscalationFailed as failure:
                self._failed(turn, failure.receipt)
                raise
        return self._settle(turn, value, receipt)

    # -- the calls ---------------------------------------------------------------------------

    def _path(self, response_model: Any, *, is_async: bool) -> CallPath:
        key = (response_model, is_async)
        try:
            return self._paths[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable annotation: build it for this call
            return self._build(response_model, is_async)
        self._paths[key] = path = self._build(response_model, is_async)
        return path

    def _build(self, response_model: Any, is_async: bool) -> CallPath:
        decorator = self._decorators.get(response_model)
        if decorator is None:
            decorator = escalating(response_model=response_model, **self._settings)
        return path_of(decorator(_prompt("turn", is_async)))

    def _writer(self, is_async: bool) -> CallPath:
        if is_async not in self._writers:
            tier = self.ladder.rungs[self.ladder.strongest].tier
            spec = Tier(tier) if isinstance(tier, str) else tier
            decorator = escalating(
                tiers=[dataclasses.replace(spec, gate_reasks=max(spec.gate_reasks, 1))],
                response_model=type(self.memory),
                gates=[self.handoff.gate()],
                retry=self._settings["retry"],
                when_unmet="best_effort",
                task="handoff_memory",
                tags=self._settings["tags"],
            )
            self._writers[is_async] = path_of(decorator(_prompt("handoff_memory", is_async)))
        return self._writers[is_async]

    def _writer_input(self) -> list[Message]:
        since = self.history[self._written_upto :]
        return writer_messages(self.memory, since, self.handoff.budget_tokens)

    def _run_writer_sync(self, messages: list[Message]) -> tuple[Any, Receipt, bool]:
        try:
            value, receipt = self._writer(False).walk_sync((messages,), {})
        except EscalationFailed as failure:
            return None, failure.receipt, False
        return value, receipt, True

    async def _run_writer_async(self, messages: list[Message]) -> tuple[Any, Receipt, bool]:
        try:
            value, receipt = await self._writer(True).walk_async((messages,), {})
        except EscalationFailed as failure:
            return None, failure.receipt, False
        return value, receipt, True

    # -- the decisions, shared by both faces -------------------------------------------------

    def _begin(self, message: str | Message | Sequence[Message]) -> TurnPlan:
        new = _as_messages(message)
        number = len(self._receipt.turns) + 1
        return self._steer.plan(number, [*self.history, *new], new)

    def _memory_due(self, turn: TurnPlan) -> str | None:
        """Why the memory is (re)written before this turn, or None."""
        number = turn.number
        stale = self._written_at is None or self._written_at < number - 1
        every = self.handoff.update_every
        written = self._written_at
        if every is not None and written is not None and number - 1 - written >= every:
            return f"every {every} turns"
        if not (turn.changes_tier and stale and number > 1):
            return None
        if turn.step_down:
            return "the framing turns are done" if self._written_at is None else "stepping down"
        return "the tier changes" if self._written_at is None else None

    def _written(
        self, why: str, turn: TurnPlan, run: Callable[[list[Message]], tuple[Any, Receipt, bool]]
    ) -> None:
        value, receipt, answered = run(self._writer_input())
        trimmed = False
        if answered and isinstance(value, BaseModel):
            value, trimmed = trim(value, self.handoff.budget_tokens)
            self.memory = value
            self._memory_version += 1
            self._written_at = turn.number - 1
            self._written_upto = len(self.history)
        else:
            why = f"{why} (the write failed: the previous memory is kept)"
        update = MemoryUpdate(
            version=self._memory_version,
            after_turn=turn.number - 1,
            reason=why,
            memory=self.memory.model_dump(mode="json"),
            tokens=estimate_tokens(render(self.memory)),
            trimmed=trimmed,
            failed=not answered,
            receipt=receipt,
        )
        self._update(memory_updates=(*self._receipt.memory_updates, update))

    def _inject(self, turn: TurnPlan) -> None:
        """The handoff block goes into this turn's request when its tier changes."""
        if not turn.changes_tier or self.memory_is_empty():
            return
        block = handoff_block(
            self.memory, from_tier=turn.previous, lighter=turn.rung != self.ladder.strongest
        )
        turn.inject(block)
        record = HandoffRecord(
            turn=turn.number,
            from_tier=turn.previous,
            to_tier=turn.rung_name,
            memory_version=self._memory_version,
            tokens=estimate_tokens(block),
        )
        self._update(handoffs=(*self._receipt.handoffs, record))

    def memory_is_empty(self) -> bool:
        return not any(v not in ("", [], None, {}) for v in self.memory.model_dump().values())

    def _tags(self, turn: TurnPlan, kind: str = "turn") -> dict[str, str]:
        """How a receipt store groups a conversation's calls: its id, the turn, the kind."""
        return {"conversation": self._receipt.id, "turn": str(turn.number), "kind": kind}

    def _settle(self, turn: TurnPlan, value: Any, receipt: Receipt) -> Any:
        during = self._steer.after(turn, receipt, value_text := _as_text(value))
        self.history.extend(turn.new)
        self.history.append({"role": "assistant", "content": value_text})
        self._record(turn, receipt, during)
        return attach(value, receipt)

    def _failed(self, turn: TurnPlan, receipt: Receipt) -> None:
        self._steer.failed(turn)
        self._record(turn, receipt, ())

    def _record(self, turn: TurnPlan, receipt: Receipt, during: Sequence[FiredTrigger]) -> None:
        record = TurnRecord(
            index=turn.number,
            tier=turn.rung_name,
            source=turn.source,
            why=turn.why,
            answered_by=receipt.answered_by,
            triggers=(*turn.fired, *during),
            handoff=turn.injected,
            receipt=receipt,
        )
        self._update(turns=(*self._receipt.turns, record))

    def _update(self, **changes: Any) -> None:
        changes["updated_at"] = datetime.now(UTC)
        self._receipt = self._receipt.model_copy(update=changes)


def _as_messages(message: str | Message | Sequence[Message]) -> list[Message]:
    if isinstance(message, str):
        return [{"role": "user", "content": message}]
    if isinstance(message, Mapping):
        return [dict(message)]
    if isinstance(message, Sequence) and message:
        items = list(message)
        if all(isinstance(m, Mapping) for m in items):
            return [dict(m) for m in items if isinstance(m, Mapping)]
    raise TypeError(
        f"send() takes a str (the user's message), a message dict or a list of them, "
        f"got {message!r}"
    )


def _as_text(value: Any) -> str:
    """How a reply is kept in the history: text as is, a model as its JSON."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, default=str, ensure_ascii=False)
