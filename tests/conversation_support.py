"""Scripted models for the conversation tests: the local server plays a ladder's tiers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from escalate.testing._server import ProviderServer, Reply, Request

MEMORY = {
    "goal": "Redesign the billing schema for multi-currency.",
    "constraints": ["amounts stay exact decimals", "no downtime"],
    "non_goals": ["tax rules"],
    "assumptions": ["Postgres 15"],
    "decisions": ["store ISO 4217 codes"],
    "open_questions": ["rounding per currency?"],
    "output_format": "SQL then a short note",
}


def tool_name(request: Request) -> str | None:
    for tool in request.body.get("tools") or ():
        if isinstance(tool, Mapping):
            function = tool.get("function")
            if isinstance(function, Mapping):
                return str(function.get("name"))
            if tool.get("name"):
                return str(tool["name"])
    return None


def play(server: ProviderServer, *models: str, escalate_on: str = "ESCALATE") -> None:
    """Every model answers ``{model}: {last user text}``; a memory request gets MEMORY; a
    model offered the escalation option takes it when the user text holds ``escalate_on``;
    a user text holding ``BAD@{model}!`` gets ``BAD`` from that model."""
    for model in models:
        server.respond(model, _responder(model, escalate_on))


def _responder(model: str, escalate_on: str) -> Any:
    def reply(request: Request) -> Reply:
        name = tool_name(request) or ""
        said = request.last_user_text
        if "HandoffMemory" in name or "Memory" in name:
            return Reply(data=MEMORY)
        if name.endswith("OrEscalate") and escalate_on in said:
            return Reply(data={"escalate": {"reason": f"{model} is unsure", "question": said}})
        text = "BAD" if f"BAD@{model}!" in said else f"{model}: {said.splitlines()[-1]}"
        return Reply(data={"answer": text})

    return reply


def has_memory(request: Request) -> bool:
    from escalate.conversation import MARKER

    return MARKER in str(request.body)


def is_memory_write(request: Request) -> bool:
    return "Memory" in (tool_name(request) or "")
