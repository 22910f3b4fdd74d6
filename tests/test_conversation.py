"""Conversations on a ladder, over the real SDKs and instructor against the local provider
server, through the sync and the async face."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from escalate import Tier, receipt_of
from escalate.conversation import (
    MARKER,
    Conversation,
    ConversationReceipt,
    HandoffMemory,
    after_turns,
    constraints_conflict,
    deep_work,
    goal_changed,
    high_stakes,
    low_confidence,
    missing_information,
)
from escalate.exceptions import ConfigurationError
from escalate.gates import Rejected
from escalate.testing._server import ProviderServer
from tests.conversation_support import MEMORY, has_memory, is_memory_write, play

pytest_plugins = ["tests.server_fixtures"]

Send = Callable[..., Any]


@pytest.fixture
def send(face: str) -> Callable[[Conversation], Send]:
    """send(chat)(message, **kw): one turn through the face under test."""

    def bind(chat: Conversation) -> Send:
        if face == "sync":
            return chat.send
        return lambda *a, **kw: asyncio.run(chat.asend(*a, **kw))

    return bind


def _tiers(server: ProviderServer, *models: str) -> list[Tier]:
    return [Tier(f"openai/{m}", base_url=server.openai_base_url, api_key="k") for m in models]


def _turn_requests(server: ProviderServer) -> list[Any]:
    return [r for r in server.requests if not is_memory_write(r)]


def test_phases_step_down_on_schedule(server: ProviderServer, send: Any) -> None:
    play(server, "gpt-4o", "gpt-4.1-mini", "gpt-4o-mini")
    strong, mid, light = _tiers(server, "gpt-4o", "gpt-4.1-mini", "gpt-4o-mini")
    chat = Conversation(ladder=[(strong, 2), (mid, 3), (light, None)])
    say = send(chat)
    replies = [say(f"step {i}") for i in range(1, 8)]

    expected = ["gpt-4o"] * 2 + ["gpt-4.1-mini"] * 3 + ["gpt-4o-mini"] * 2
    assert [str(r).partition(":")[0] for r in replies] == expected
    assert [t.tier.partition("/")[2] for t in chat.receipt.turns] == expected
    assert [r.model for r in _turn_requests(server)] == expected
    assert [t.source for t in chat.receipt.turns] == ["schedule"] * 7
    assert chat.receipt.turns[2].why == "schedule: openai/gpt-4.1-mini for turns 3-5"
    # Each turn has its own call receipt, started where the ladder said, and carries it.
    for reply, turn in zip(replies, chat.receipt.turns, strict=True):
        assert receipt_of(reply) == turn.receipt
        assert turn.receipt.route.start_tier == turn.tier and turn.receipt.route.source == "options"
        assert turn.receipt.tags == {
            "conversation": chat.receipt.id,
            "turn": str(turn.index),
            "kind": "turn",
        }


def test_the_memory_is_injected_exactly_at_tier_changes(server: ProviderServer, send: Any) -> None:
    play(server, "gpt-4o", "gpt-4.1-mini", "gpt-4o-mini")
    strong, mid, light = _tiers(server, "gpt-4o", "gpt-4.1-mini", "gpt-4o-mini")
    chat = Conversation(ladder=[(strong, 2), (mid, 2), (light, None)], system="Be brief.")
    say = send(chat)
    for i in range(1, 7):
        say(f"step {i}")

    turns = _turn_requests(server)
    assert [has_memory(r) for r in turns] == [False, False, True, False, True, False]
    assert [h.turn for h in chat.receipt.handoffs] == [3, 5]
    assert [(h.from_tier, h.to_tier) for h in chat.receipt.handoffs] == [
        ("openai/gpt-4o", "openai/gpt-4.1-mini"),
        ("openai/gpt-4.1-mini", "openai/gpt-4o-mini"),
    ]
    # The block is one system message, just before the turn's user message, and says what
    # the writer wrote, and tells the lighter tier to flag and ask.
    third = turns[2].body["messages"]
    block = third[-2]
    assert block["role"] == "system" and block["content"].startswith(MARKER)
    assert third[-1] == {"role": "user", "content": "step 3"}
    assert MEMORY["goal"] in block["content"] and "no downtime" in block["content"]
    assert "ask the user" in block["content"] and "contradicts an assumption" in block["content"]
    # The history the next turns send holds no block: it is a handoff, not a transcript line.
    assert sum(MARKER in str(m) for m in turns[3].body["messages"]) == 0
    # The strongest rung wrote the memory, before each step-down; its cost is counted.
    writes = [r for r in server.requests if is_memory_write(r)]
    assert [r.model for r in writes] == ["gpt-4o", "gpt-4o"]
    # The first write reads the framing turns; a rewrite, the memory and the turns since.
    assert "step 1" in writes[0].last_user_text and "step 2" in writes[0].last_user_text
    assert "step 2" not in writes[1].last_user_text and "step 4" in writes[1].last_user_text
    assert MEMORY["goal"] in writes[1].last_user_text
    updates = chat.receipt.memory_updates
    assert [(u.version, u.after_turn, u.reason) for u in updates] == [
        (1, 2, "the framing turns are done"),
        (2, 4, "stepping down"),
    ]
    assert chat.memory == HandoffMemory(**MEMORY)
    assert [u.receipt.tags for u in updates] == [
        {"conversation": chat.receipt.id, "turn": "3", "kind": "memory"},
        {"conversation": chat.receipt.id, "turn": "5", "kind": "memory"},
    ]
    assert {u.receipt.task for u in updates} == {"handoff_memory"}
    assert chat.receipt.memory_cost_usd == sum(u.receipt.cost_usd or 0 for u in updates) > 0
    total = sum(t.receipt.known_cost_usd for t in chat.receipt.turns) + chat.receipt.memory_cost_usd
    assert chat.receipt.cost_usd == total


TRIGGERS = [
    (goal_changed(), "Actually, let's target invoices instead"),
    (constraints_conflict(), "It must be instant but it must not lock rows"),
    (missing_information(), "The volume is unknown, not sure about peaks"),
    (high_stakes(), "The card data handling must be GDPR compliant"),
    (deep_work(), "Here is the traceback from the worker: KeyError"),
]


@pytest.mark.parametrize(("trigger", "message"), TRIGGERS, ids=[t.name for t, _ in TRIGGERS])
def test_each_trigger_climbs_and_the_ladder_steps_down_after(
    server: ProviderServer, send: Any, trigger: Any, message: str
) -> None:
    play(server, "gpt-4o", "gpt-4o-mini")
    strong, light = _tiers(server, "gpt-4o", "gpt-4o-mini")
    chat = Conversation(ladder=[(strong, 1), (light, None)], triggers=[trigger])
    say = send(chat)
    for text in ["frame it", "routine", message, "routine again"]:
        say(text)

    turns = chat.receipt.turns
    assert [t.tier for t in turns] == [strong.model, light.model, strong.model, light.model]
    assert [t.source for t in turns] == ["schedule", "schedule", "trigger", "step_down"]
    assert [f.name for f in turns[2].triggers] == [trigger.name]
    assert turns[2].why.startswith(f"{trigger.name}: ")
    assert not turns[1].triggers and not turns[3].triggers
    assert [h.turn for h in chat.receipt.handoffs] == [2, 3, 4]
    assert [u.reason for u in chat.receipt.memory_updates] == [
        "the framing turns are done",
        "stepping down",
    ]
    assert chat.receipt.metrics().triggers_fired == {trigger.name: 1}


def test_a_stretch_is_held_by_the_step_down_rule(server: ProviderServer, send: Any) -> None:
    play(server, "gpt-4o", "gpt-4o-mini")
    strong, light = _tiers(server, "gpt-4o", "gpt-4o-mini")
    chat = Conversation(
        ladder=[(strong, 1), (light, None)], triggers=[high_stakes()], step_down=after_turns(2)
    )
    say = send(chat)
    for text in ["frame", "a security question", "and then", "routine"]:
        say(text)
    assert [t.source for t in chat.receipt.turns] == ["schedule", "trigger", "holding", "step_down"]
    assert chat.receipt.turns[2].tier == strong.model and not chat.receipt.turns[2].handoff


def test_the_lighter_tier_signalling_low_confidence_climbs(
    server: ProviderServer, send: Any
) -> None:
    play(server, "gpt-4o", "gpt-4o-mini")
    strong, light = _tiers(server, "gpt-4o", "gpt-4o-mini")
    chat = Conversation(
        ladder=[(strong, 1), (light, None)],
        triggers=[low_confidence()],
        step_down=after_turns(2),
    )
    say = send(chat)
    replies = [say(t) for t in ["frame", "ESCALATE this one", "next", "last"]]

    turn = chat.receipt.turns[1]
    assert turn.tier == light.model and turn.answered_by == strong.model
    assert str(replies[1]) == "gpt-4o: ESCALATE this one"
    assert [(f.name, f.when) for f in turn.triggers] == [("low_confidence", "during")]
    assert "gpt-4o-mini is unsure" in turn.triggers[0].reason
    assert turn.receipt.self_escalations == 1
    # Held up one more turn (after_turns(2)), then back down.
    assert [t.source for t in chat.receipt.turns[2:]] == ["holding", "step_down"]
    # The strongest rung is never offered the option; the lighter one is.
    light_bodies = [r for r in server.requests_for("gpt-4o-mini")]
    assert all("OrEscalate" in str(r.body.get("tools")) for r in light_bodies)


def test_a_turn_failing_its_gates_escalates_within_the_turn(
    server: ProviderServer, send: Any
) -> None:
    def not_bad(answer: Any, context: Any) -> None:
        if answer == "BAD":
            raise Rejected("the answer says BAD")

    play(server, "gpt-4o", "gpt-4o-mini")
    strong, light = _tiers(server, "gpt-4o", "gpt-4o-mini")
    chat = Conversation(ladder=[(strong, 1), (light, None)], gates=[not_bad])
    say = send(chat)
    say("frame")
    reply = say("BAD@gpt-4o-mini! please")

    turn = chat.receipt.turns[1]
    assert str(reply) == "gpt-4o: BAD@gpt-4o-mini! please"
    assert turn.tier == light.model and turn.answered_by == strong.model
    assert [(a.tier, a.outcome, a.trigger) for a in turn.receipt.attempts] == [
        (light.model, "rejected", "gate"),
        (strong.model, "answered", None),
    ]
    assert turn.receipt.function == "escalate.conversation.turn"
    assert turn.escalated_within and chat.receipt.metrics().escalation_frequency == 0.5
    # The next turn starts light again, handed the memory.
    say("next")
    assert chat.receipt.turns[2].tier == light.model and chat.receipt.turns[2].handoff


class Step(BaseModel):
    answer: str


def test_structured_replies_tool_messages_and_the_receipt_round_trip(
    server: ProviderServer, send: Any
) -> None:
    play(server, "gpt-4o", "gpt-4o-mini")
    strong, light = _tiers(server, "gpt-4o", "gpt-4o-mini")
    chat = Conversation(ladder=[(strong, 1), (light, None)], triggers=[high_stakes()])
    say = send(chat)
    first = say("frame", response_model=Step)
    assert first == Step(answer="gpt-4o: frame") and receipt_of(first).answered_by == strong.model
    chat.add(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "rates", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "EUR 1.08"},
    )
    say("use the rate")
    body = _turn_requests(server)[-1].body["messages"]
    assert {"role": "tool", "tool_call_id": "c1", "content": "EUR 1.08"} in body
    assert body[0] == {"role": "assistant", "content": '{"answer":"gpt-4o: frame"}'} or any(
        m.get("content") == '{"answer":"gpt-4o: frame"}' for m in body
    )
    chat.feedback(1, aligned=True)
    chat.resolve()
    receipt = chat.receipt
    again = ConversationReceipt.from_json(receipt.to_json(indent=2))
    assert again == receipt and again.metrics() == receipt.metrics()
    metrics = receipt.metrics()
    assert metrics.turns_to_completion == 2 and metrics.first_turn_alignment == 1.0
    assert metrics.cost_per_resolved_task_usd == receipt.cost_usd
    assert metrics.tokens_per_resolved_task == receipt.input_tokens + receipt.output_tokens


def test_anthropic_tiers_climb_and_hand_over_too(server: ProviderServer, send: Any) -> None:
    play(server, "claude-sonnet-4-5", "claude-haiku-4-5")
    url = server.anthropic_base_url
    strong = Tier("anthropic/claude-sonnet-4-5", base_url=url, api_key="k")
    light = Tier("anthropic/claude-haiku-4-5", base_url=url, api_key="k")
    chat = Conversation(ladder=[(strong, 1), (light, None)], triggers=[high_stakes()])
    say = send(chat)
    for text in ["frame", "routine", "a legal question", "routine"]:
        say(text)
    assert [t.answered_by for t in chat.receipt.turns] == [
        strong.model,
        light.model,
        strong.model,
        light.model,
    ]
    turns = _turn_requests(server)
    assert [MARKER in str(r.body.get("system")) for r in turns] == [False, True, True, True]
    assert chat.receipt.cost_usd is not None and chat.receipt.cost_usd > 0


def test_a_user_trigger_is_a_callable_of_the_history(server: ProviderServer, send: Any) -> None:
    play(server, "gpt-4o", "gpt-4o-mini")
    strong, light = _tiers(server, "gpt-4o", "gpt-4o-mini")

    def long_message(history: list[dict[str, Any]]) -> str | None:
        return "a long message" if len(str(history[-1]["content"])) > 40 else None

    chat = Conversation(ladder=[(strong, 1), (light, None)], triggers=[long_message])
    say = send(chat)
    for text in ["frame", "short", "x" * 50]:
        say(text)
    assert chat.receipt.turns[2].triggers[0].model_dump() == {
        "name": "long_message",
        "reason": "a long message",
        "when": "before",
    }
    assert chat.receipt.turns[2].tier == strong.model


def test_configuration_mistakes_fail_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="non-empty list of"):
        Conversation(ladder=[])
    with pytest.raises(ConfigurationError, match="not the last rung"):
        Conversation(ladder=[("openai/gpt-4o", None), ("openai/gpt-4o-mini", None)])
    with pytest.raises(ConfigurationError, match="turns is an int >= 1"):
        Conversation(ladder=[("openai/gpt-4o", 0), ("openai/gpt-4o-mini", None)])
    with pytest.raises(ConfigurationError, match="twice"):
        Conversation(ladder=[("openai/gpt-4o", 1), ("openai/gpt-4o", None)])
    with pytest.raises(ConfigurationError, match="unknown provider"):
        Conversation(ladder=[("mistral/large", 1), ("openai/gpt-4o-mini", None)])
    with pytest.raises(ConfigurationError, match="callable of the history"):
        Conversation(ladder=[("openai/gpt-4o", None)], triggers=["security"])  # type: ignore[list-item]


def test_the_memory_is_held_to_its_budget(server: ProviderServer, send: Any) -> None:
    from escalate.conversation import Handoff
    from escalate.testing._server import Reply

    play(server, "gpt-4o", "gpt-4o-mini")
    long = {**MEMORY, "decisions": [f"decision number {i} with some words" for i in range(40)]}
    # The writer's first memory is too long: the gate re-asks once, with its reason; the
    # second is still too long: the memory is trimmed to the budget.
    server.script("gpt-4o", Reply(data={"answer": "framed"}), Reply(data=long), Reply(data=long))
    strong, light = _tiers(server, "gpt-4o", "gpt-4o-mini")
    chat = Conversation(ladder=[(strong, 1), (light, None)], handoff=Handoff(budget_tokens=120))
    say = send(chat)
    say("frame")
    say("go on")

    update = chat.receipt.memory_updates[0]
    assert [(a.purpose, a.outcome, a.gate) for a in update.receipt.attempts] == [
        ("answer", "rejected", "memory_budget"),
        ("reask", "rejected", "memory_budget"),
    ]
    assert update.receipt.outcome == "best_effort" and update.trimmed and update.tokens <= 120
    assert "keep it within 120" in str(server.requests_for("gpt-4o")[2].body["messages"])
    assert chat.receipt.handoffs[0].memory_version == 1
    assert len(chat.memory.decisions) < 40  # type: ignore[attr-defined]
