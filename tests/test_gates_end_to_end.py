"""Every mechanical gate end to end through the real SDKs and instructor over the local
provider server, through the sync and the async face; user-written gates; names."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from escalate import ConfigurationError, escalating, receipt_of
from escalate.gates import (
    GateContext,
    Rejected,
    cites,
    complete,
    known_ids,
    logprob_confidence,
    max_length,
    min_length,
    not_empty,
    not_hedging,
    not_refusal,
    self_reported,
)
from escalate.testing._server import ProviderServer, Reply
from tests._gates_helpers import STRONG, Summary, cheap_and_strong

# --- names and shape ----------------------------------------------------------------------


def test_default_names_and_overrides() -> None:
    assert [
        g.name
        for g in (
            min_length("summary", 1),
            max_length("tags", 1),
            cites("summary"),
            known_ids("customer.id", set()),
            not_refusal(),
            not_hedging("summary"),
            complete(),
            not_empty("tags"),
            logprob_confidence(0.5),
            self_reported(),
        )
    ] == [
        "min_length(summary)",
        "max_length(tags)",
        "cites(summary)",
        "known_ids(customer.id)",
        "not_refusal",
        "not_hedging(summary)",
        "complete",
        "not_empty(tags)",
        "logprob_confidence",
        "self_reported",
    ]
    assert min_length("summary", 1, name="long_enough").name == "long_enough"


def test_gates_are_frozen() -> None:
    gate = min_length("summary", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        gate.n = 5  # type: ignore[misc]
    assert gate == min_length("summary", 1)


# --- end to end ---------------------------------------------------------------------------


E2E_CASES: list[tuple[Any, dict[str, Any], dict[str, Any], str]] = [
    # gate, a cheap answer that passes, one that is rejected, the reason in the receipt
    (
        min_length("summary", 20),
        STRONG,
        {"summary": "Paid."},
        "min_length(summary): summary is 5 chars; needs at least 20 chars",
    ),
    (
        max_length("summary", 8, unit="words"),
        STRONG,
        {"summary": "one two three four five six seven eight nine"},
        "max_length(summary): summary is 9 words; needs at most 8 words",
    ),
    (
        cites("summary", pattern=r"\[(\d+)\]", allowed={"1", "2"}),
        STRONG,
        {"summary": "Paid [4]."},
        "cites(summary): summary cites 1 id(s) not allowed: '4'",
    ),
    (
        known_ids("sources", {"doc-1", "doc-2"}),
        STRONG,
        {"summary": "Paid.", "sources": ["doc-1", "doc-404"]},
        "known_ids(sources): unknown id(s) at sources: 'doc-404'",
    ),
    (
        not_refusal(),
        STRONG,
        {"summary": "I'm sorry, but I cannot read invoices."},
        'not_refusal: refusal: summary says "I\'m sorry, but"',
    ),
    (
        not_hedging("summary"),
        STRONG,
        {"summary": "It might be paid."},
        "not_hedging(summary): hedging: summary says 'might be'",
    ),
    (
        complete(),
        STRONG,
        {"summary": "  ", "sources": []},
        "complete: every text field is empty (summary)",
    ),
    (
        not_empty("sources"),
        STRONG,
        {"summary": "Paid."},
        "not_empty(sources): empty: sources (an empty list)",
    ),
]


def test_a_good_answer_passes_every_built_in_gate_end_to_end(
    build: Any, server: ProviderServer, openai_tier: Any
) -> None:
    gates = [case[0] for case in E2E_CASES]
    extract = build(tiers=cheap_and_strong(openai_tier), response_model=Summary, gates=gates)
    server.script("gpt-4o-mini", Reply(data=STRONG))

    receipt = receipt_of(extract("doc"))

    assert receipt.answered_by == "openai/gpt-4o-mini" and not receipt.escalated
    assert receipt.attempts[0].scores == {}  # mechanical gates keep no score
    assert server.requests_for("gpt-4o") == []


@pytest.mark.parametrize(
    ("gate", "good", "bad", "reason"), E2E_CASES, ids=[c[0].name for c in E2E_CASES]
)
def test_each_gate_rejects_and_escalates_end_to_end(
    build: Any,
    server: ProviderServer,
    openai_tier: Any,
    gate: Any,
    good: dict[str, Any],
    bad: dict[str, Any],
    reason: str,
) -> None:
    extract = build(tiers=cheap_and_strong(openai_tier), response_model=Summary, gates=[gate])
    server.script("gpt-4o-mini", Reply(data=bad))
    server.script("gpt-4o", Reply(data=STRONG))

    result = extract("doc")

    assert result == Summary(**STRONG)
    receipt = receipt_of(result)
    cheap, strong = receipt.attempts
    assert (cheap.outcome, cheap.trigger, cheap.reason) == ("rejected", "gate", reason)
    assert cheap.raw_output is not None and "summary" in cheap.raw_output
    assert strong.outcome == "answered" and receipt.answered_by == "openai/gpt-4o"
    (move,) = receipt.escalations
    assert (move.trigger, move.reason) == ("gate", reason)


def test_gates_on_anthropic_tiers(build: Any, server: ProviderServer, anthropic_tier: Any) -> None:
    tiers = [anthropic_tier("claude-haiku-4-5"), anthropic_tier("claude-sonnet-4-5")]
    extract = build(tiers=tiers, response_model=Summary, gates=[not_refusal(), complete()])
    server.script("claude-haiku-4-5", Reply(data={"summary": "As an AI I can't say."}))
    server.script("claude-sonnet-4-5", Reply(data=STRONG))
    receipt = receipt_of(extract("doc"))
    assert receipt.attempts[0].reason == "not_refusal: refusal: summary says 'As an AI'"
    assert receipt.answered_by == "anthropic/claude-sonnet-4-5"


def test_per_tier_gates_check_only_their_tier(
    build: Any, server: ProviderServer, openai_tier: Any
) -> None:
    tiers = [openai_tier("gpt-4o-mini", gates=[min_length("summary", 20)]), openai_tier("gpt-4o")]
    extract = build(tiers=tiers, response_model=Summary)
    server.script("gpt-4o-mini", Reply(data={"summary": "short"}))
    server.script("gpt-4o", Reply(data={"summary": "short too"}))
    result = extract("doc")
    assert result.summary == "short too"
    assert receipt_of(result).answered_by == "openai/gpt-4o"


def test_a_user_written_gate_sync_and_async_reason_verbatim(
    build: Any, face: str, server: ProviderServer, openai_tier: Any
) -> None:
    reason = "the total must be quoted from the invoice, found «12.5» nowhere"
    seen: list[GateContext] = []

    def quoted(answer: Summary, context: GateContext) -> float | None:
        seen.append(context)
        if answer.summary == "bad":
            raise Rejected(reason)
        return 0.75

    async def quoted_async(answer: Summary, context: GateContext) -> float | None:
        return quoted(answer, context)

    quoted_async.__name__ = "quoted"
    gate = quoted if face == "sync" else quoted_async
    extract = build(tiers=cheap_and_strong(openai_tier), response_model=Summary, gates=[gate])
    server.script("gpt-4o-mini", Reply(data={"summary": "bad"}))
    server.script("gpt-4o", Reply(data={"summary": "good"}))

    receipt = receipt_of(extract("doc"))

    cheap, strong = receipt.attempts
    assert cheap.reason == f"quoted: {reason}"
    assert (cheap.outcome, cheap.trigger) == ("rejected", "gate")
    assert strong.scores == {"quoted": 0.75}
    assert [c.tier for c in seen] == ["openai/gpt-4o-mini", "openai/gpt-4o"]
    assert seen[0].messages == [{"role": "user", "content": "Extract the invoice in: doc"}]
    assert seen[0].args == ("doc",)
    assert seen[0].completion is not None


def test_an_async_gate_on_a_sync_function_is_refused(openai_tier: Any) -> None:
    async def gate(answer: Any, context: GateContext) -> None:
        return None

    with pytest.raises(ConfigurationError, match="async"):
        escalating(tiers=[openai_tier()], response_model=Summary, gates=[gate])(lambda t: t)


def test_a_wrong_field_name_is_refused_when_decorating(openai_tier: Any) -> None:
    with pytest.raises(ConfigurationError, match="summry"):
        escalating(
            tiers=cheap_and_strong(openai_tier),
            response_model=Summary,
            gates=[min_length("summry", 1)],
        )
