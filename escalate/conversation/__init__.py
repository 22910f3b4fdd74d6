"""Conversations on a ladder: the strongest tier for the framing turns, lighter tiers for
routine continuation, back up when a trigger fires, and a structured handoff memory
injected whenever the tier changes.

>>> from escalate.conversation import Conversation, HandoffMemory, high_stakes
>>> chat = Conversation(                                            # doctest: +SKIP
...     ladder=[("openai/gpt-4o", 2), ("openai/gpt-4o-mini", None)],
...     triggers=[goal_changed(), high_stakes(), low_confidence()],
...     memory=HandoffMemory(),
... )
>>> reply = chat.send("We need to redesign our billing schema ...")  # doctest: +SKIP
>>> chat.receipt.summary()                                          # doctest: +SKIP

The rooms: ``_ladder`` (rungs and the schedule), ``_triggers`` (triggers and step-down
rules), ``_memory`` (the handoff memory, its block, budget and writer prompt), ``_steer``
(where each turn starts and why), ``_receipt`` (the conversation receipt),
``_conversation`` (:class:`Conversation`, sync ``send`` and async ``asend``).
"""

from escalate.conversation._conversation import Conversation
from escalate.conversation._ladder import Ladder, Rung
from escalate.conversation._memory import MARKER, Handoff, HandoffMemory
from escalate.conversation._receipt import (
    ConversationReceipt,
    FiredTrigger,
    HandoffRecord,
    MemoryUpdate,
    Metrics,
    TurnRecord,
)
from escalate.conversation._triggers import (
    PhraseTrigger,
    StepDown,
    after_turns,
    constraints_conflict,
    deep_work,
    goal_changed,
    high_stakes,
    low_confidence,
    missing_information,
    when_settled,
)

__all__ = [
    "MARKER",
    "Conversation",
    "ConversationReceipt",
    "FiredTrigger",
    "Handoff",
    "HandoffMemory",
    "HandoffRecord",
    "Ladder",
    "MemoryUpdate",
    "Metrics",
    "PhraseTrigger",
    "Rung",
    "StepDown",
    "TurnRecord",
    "after_turns",
    "built_in_triggers",
    "constraints_conflict",
    "deep_work",
    "goal_changed",
    "high_stakes",
    "low_confidence",
    "missing_information",
    "when_settled",
]


def built_in_triggers() -> list[object]:
    """Every built-in trigger, low_confidence included."""
    return [
        goal_changed(),
        constraints_conflict(),
        missing_information(),
        high_stakes(),
        deep_work(),
        low_confidence(),
    ]
