"""An interactive chat where every turn starts on the cheap tier.

The cheap tier answers, or asks to escalate (self-escalation, see
``escalating(self_escalation=...)``); the terminal shows which tier is talking and why it
switched. ``escalate chat`` runs it; :func:`run_chat` takes any text streams, so a test
drives it through its input and output.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, TextIO

from escalate._config import Tier
from escalate._decorator import escalating
from escalate._results import receipt_of
from escalate.events import Escalated, Event, MovedSideways, TierStarted
from escalate.exceptions import EscalationFailed
from escalate.testing._server import ProviderServer, Reply, Request

__all__ = ["PAIRS", "offline_server", "run_chat", "tiers_for"]

PAIRS = {
    "openai": ("openai/gpt-4o-mini", "openai/gpt-4o"),
    "anthropic": ("anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-5"),
    "google": ("google/gemini-2.5-flash", "google/gemini-2.5-pro"),
}
"""The cheap/strong pair ``--provider`` picks."""

SYSTEM = "You are a helpful assistant in a terminal chat. Answer concisely."


def tiers_for(
    provider: str,
    *,
    base_url: str | None = None,
    cheap: str | None = None,
    strong: str | None = None,
    api_key: str | None = None,
) -> list[Tier]:
    """The two tiers of a chat: a provider's pair, or two models of a compatible server.

    The key is ``api_key``, else the provider's environment variable; a server at
    ``base_url`` may need none (local servers take any). With neither, a ValueError says
    which variable to set, before any request is made."""
    if provider not in PAIRS and base_url is None:
        raise ValueError(f"unknown provider {provider!r}: choose from {', '.join(PAIRS)}")
    api_key = api_key or _key_for(provider, base_url)
    if base_url is not None and provider not in PAIRS:
        if not (cheap and strong):
            raise ValueError("with --base-url, name both models: --cheap MODEL --strong MODEL")
        return [
            Tier(f"compatible/{cheap}", base_url=base_url, api_key=api_key, name="cheap"),
            Tier(f"compatible/{strong}", base_url=base_url, api_key=api_key, name="strong"),
        ]
    if provider not in PAIRS:
        raise ValueError(f"unknown provider {provider!r}: choose from {', '.join(PAIRS)}")
    pair = PAIRS[provider]
    models = (
        f"{provider}/{cheap}" if cheap else pair[0],
        f"{provider}/{strong}" if strong else pair[1],
    )
    return [
        Tier(model, base_url=base_url, api_key=api_key, name=name)
        for model, name in zip(models, ("cheap", "strong"), strict=True)
    ]


_KEY_VARIABLES = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google": "GOOGLE_API_KEY",
}
_ALSO = {"google": "GEMINI_API_KEY"}


def _key_for(provider: str, base_url: str | None) -> str:
    variable = _KEY_VARIABLES.get(provider)
    key = os.environ.get(variable) if variable else None
    key = key or os.environ.get(_ALSO.get(provider, ""))
    if key:
        return key
    if base_url is not None:
        return "unused"  # a local or self-hosted server: it takes any key
    raise ValueError(
        f"no API key for {provider}: set {variable or 'the key'}, pass --api-key, "
        "or try it with --offline (no keys, a local server plays both models)"
    )


def run_chat(
    tiers: Sequence[Tier],
    *,
    input: TextIO,
    output: TextIO,
    prompt: str = "you> ",
    echo: bool | None = None,
) -> list[dict[str, Any]]:
    """Chat until end of input (or ``/quit``); returns the conversation.

    ``echo`` writes each line read to ``output`` (default: when ``input`` is not a
    terminal), so a piped or scripted session reads as a transcript.
    """
    if echo is None:
        echo = not input.isatty()
    history: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]

    def show(event: Event) -> None:
        if isinstance(event, Escalated) and event.to_tier is not None:
            why = event.reason.removeprefix("the model asked to escalate: ")
            output.write(f"  [{event.from_tier} -> {event.to_tier}] {why}\n")
        elif isinstance(event, MovedSideways):
            output.write(
                f"  [{event.tier}: {event.from_deployment} -> {event.to_deployment}]"
                f" {event.reason}\n"
            )
        elif isinstance(event, TierStarted):
            output.flush()

    @escalating(tiers=tiers, response_model=str, self_escalation=True, hooks=[show])
    def reply(conversation: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return conversation

    total = Decimal(0)
    while True:
        output.write(prompt)
        output.flush()
        line = input.readline()
        if echo:
            output.write(line if line.endswith("\n") or not line else line + "\n")
        if not line or line.strip() in {"/quit", "/exit"}:
            output.write("\n")
            break
        if not line.strip():
            continue
        history.append({"role": "user", "content": line.strip()})
        try:
            answer = reply(history)
        except EscalationFailed as error:
            output.write(f"  [no tier could answer] {error.receipt.summary()}\n")
            history.pop()
            continue
        receipt = receipt_of(answer)
        total += receipt.known_cost_usd
        cost = "cost unknown" if receipt.cost_usd is None else f"${receipt.cost_usd:.6f}"
        output.write(f"{receipt.answered_by}> {answer}\n  ({cost}, session ${total:.6f})\n")
        history.append({"role": "assistant", "content": str(answer)})
    return history


# --- offline: a scripted pair behind the local provider server --------------------------------

_HARD = re.compile(
    r"quantum|relativity|legal|lawsuit|contract|diagnos|medical|tax|architecture|security|proof",
    re.IGNORECASE,
)


def offline_server(provider: str) -> tuple[ProviderServer, list[Tier]]:
    """A started local server that plays a cheap model (which escalates questions about
    physics, law, medicine, tax, architecture, security and proofs) and a strong one."""
    if provider not in PAIRS:
        raise ValueError(f"unknown provider {provider!r}: choose from {', '.join(PAIRS)}")
    server = ProviderServer().start()
    cheap, strong = (model.partition("/")[2] for model in PAIRS[provider])

    def cheap_reply(request: Request) -> Reply:
        question = request.last_user_text
        if _HARD.search(question):
            return Reply(
                data={
                    "escalate": {
                        "reason": "this needs expertise beyond a small model",
                        "question": question,
                    }
                }
            )
        return Reply(data={"answer": f"(offline {cheap}) You said: {question}"})

    def strong_reply(request: Request) -> Reply:
        return Reply(
            data={"answer": f"(offline {strong}) A careful answer to: {request.last_user_text}"}
        )

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
