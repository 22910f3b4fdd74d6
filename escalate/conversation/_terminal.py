"""``escalate chat --ladder``: a terminal chat on the ladder. Each turn shows which tier
talks and why; a switch says why it happened and when the memory was handed over.
:func:`run_ladder_chat` takes any text streams, so a test drives it through them;
:func:`offline_ladder_server` plays the pair on the local provider server (``--offline``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, TextIO

from escalate._config import Tier
from escalate.conversation._conversation import Conversation
from escalate.conversation._receipt import ConversationReceipt, TurnRecord
from escalate.conversation._triggers import (
    constraints_conflict,
    deep_work,
    goal_changed,
    high_stakes,
    low_confidence,
    missing_information,
)
from escalate.events import Escalated, Event
from escalate.exceptions import EscalationFailed
from escalate.testing._server import ProviderServer, Reply, Request

__all__ = ["ladder_conversation", "offline_ladder_server", "run_ladder_chat"]

SYSTEM = "You are a helpful assistant in a terminal chat. Answer concisely."


def ladder_conversation(
    tiers: Sequence[Tier], *, framing_turns: int = 2, moves: list[str] | None = None
) -> Conversation:
    """The chat's conversation: the strong tier (``tiers[-1]``) for the framing turns, the
    cheap one (``tiers[0]``) after, every built-in trigger. Moves within a turn are
    appended to ``moves`` as they happen."""

    def show(event: Event) -> None:
        if moves is not None and isinstance(event, Escalated) and event.to_tier is not None:
            why = event.reason.removeprefix("the model asked to escalate: ")
            moves.append(f"  [within the turn: {event.from_tier} -> {event.to_tier}] {why}")

    return Conversation(
        ladder=[(tiers[-1], framing_turns), (tiers[0], None)],
        triggers=[
            goal_changed(),
            constraints_conflict(),
            missing_information(),
            high_stakes(),
            deep_work(),
            low_confidence(),
        ],
        system=SYSTEM,
        hooks=[show],
    )


def _before(chat: ConversationReceipt, turn: TurnRecord, seen_updates: int) -> list[str]:
    lines = []
    for update in chat.memory_updates[seen_updates:]:
        lines.append(
            f"  [memory v{update.version} written by {update.receipt.answered_by or '-'} "
            f"after turn {update.after_turn}: {update.reason}; ~{update.tokens} tokens, "
            f"${update.receipt.known_cost_usd:.6f}]"
        )
    previous = chat.turns[-2].answered_by if len(chat.turns) > 1 else None
    switch = f"{previous} -> {turn.tier}" if previous and previous != turn.tier else turn.tier
    handed = " +memory handed over" if turn.handoff else ""
    lines.append(f"  [turn {turn.index}: {switch}] {turn.why}{handed}")
    return lines


def run_ladder_chat(
    tiers: Sequence[Tier],
    *,
    input: TextIO,
    output: TextIO,
    framing_turns: int = 2,
    echo: bool | None = None,
) -> Conversation:
    """Chat on the ladder until end of input (or ``/quit``); returns the conversation."""
    if echo is None:
        echo = not input.isatty()
    moves: list[str] = []
    chat = ladder_conversation(tiers, framing_turns=framing_turns, moves=moves)
    total = Decimal(0)
    while True:
        output.write("you> ")
        output.flush()
        line = input.readline()
        if echo:
            output.write(line if line.endswith("\n") or not line else line + "\n")
        if not line or line.strip() in {"/quit", "/exit"}:
            break
        if not line.strip():
            continue
        seen = len(chat.receipt.memory_updates)
        moves.clear()
        try:
            answer = chat.send(line.strip())
        except EscalationFailed as error:
            output.write(f"  [no tier could answer] {error.receipt.summary()}\n")
            continue
        turn = chat.receipt.turns[-1]
        output.write("\n".join([*_before(chat.receipt, turn, seen), *moves]) + "\n")
        total = chat.receipt.known_cost_usd
        cost = "cost unknown" if turn.receipt.cost_usd is None else f"${turn.receipt.cost_usd:.6f}"
        output.write(f"{turn.answered_by}> {answer}\n  ({cost}, session ${total:.6f})\n")
    output.write(f"\n{chat.receipt.summary()}\n")
    return chat


# --- offline: the pair played by the local provider server ---------------------------------

_HARD = re.compile(r"quantum|relativity|prove|proof|tax|theorem", re.IGNORECASE)
_CONSTRAINT = re.compile(r"\b(must|never|no |without|keep|only)\b", re.IGNORECASE)


def _tool(request: Request) -> str:
    for tool in request.body.get("tools") or ():
        function = tool.get("function") if isinstance(tool, dict) else None
        name = function.get("name") if isinstance(function, dict) else tool.get("name")
        if name:
            return str(name)
    return ""


def _memory(request: Request) -> dict[str, Any]:
    """The memory the offline strong model writes: the memory so far, its goal the first
    user line, with every new line saying must/never/no/only added to the constraints."""
    lines = request.last_user_text.splitlines()
    before: dict[str, Any] = {}
    if lines and lines[0].startswith("The memory so far: "):
        before = json.loads(lines[0].removeprefix("The memory so far: "))
    said = [line.removeprefix("user: ") for line in lines if line.startswith("user: ")]
    constraints = [*before.get("constraints", []), *(s for s in said if _CONSTRAINT.search(s))]
    return {
        "goal": before.get("goal") or (said[0] if said else ""),
        "constraints": constraints[-4:],
        "decisions": [*before.get("decisions", []), f"{len(said)} more turn(s) agreed"][-3:],
        "open_questions": [s for s in said if s.endswith("?")][-2:],
        "output_format": "short plain-text answers",
    }


def offline_ladder_server(provider: str) -> tuple[ProviderServer, list[Tier]]:
    """A started local server playing a cheap model (which asks to escalate physics, proofs
    and tax) and a strong one (which also writes the handoff memory)."""
    from escalate.chat import PAIRS

    if provider not in PAIRS:
        raise ValueError(f"unknown provider {provider!r}: choose from {', '.join(PAIRS)}")
    server = ProviderServer().start()
    cheap, strong = (model.partition("/")[2] for model in PAIRS[provider])

    def cheap_reply(request: Request) -> Reply:
        question = request.last_user_text
        if _tool(request).endswith("OrEscalate") and _HARD.search(question):
            reason = "this needs expertise beyond a small model"
            return Reply(data={"escalate": {"reason": reason, "question": question}})
        return Reply(data={"answer": f"(offline {cheap}) Continuing the plan: {question}"})

    def strong_reply(request: Request) -> Reply:
        if "Memory" in _tool(request):
            return Reply(data=_memory(request))
        asked = request.last_user_text.rstrip("?")
        text = f"(offline {strong}) A careful answer on: {asked}."
        return Reply(data={"answer": text})

    server.respond(cheap, cheap_reply)
    server.respond(strong, strong_reply)
    url = {
        "openai": server.openai_base_url,
        "anthropic": server.anthropic_base_url,
        "google": server.google_base_url,
    }[provider]
    tiers = [
        Tier(f"{provider}/{cheap}", base_url=url, api_key="offline", name="cheap"),
        Tier(f"{provider}/{strong}", base_url=url, api_key="offline", name="strong"),
    ]
    return server, tiers


def transcript_json(chat: Conversation) -> str:
    """The conversation receipt, indented (for ``--receipt FILE``)."""
    return json.dumps(json.loads(chat.receipt.to_json()), indent=2)
