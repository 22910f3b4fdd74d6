"""Fake tiers answering a request for ``n`` choices in one request, as OpenAI does: each
choice plays the fake's next item and is validated on its own; one attempt, the input
counted once, the output of every choice summed (see ``supports_n``)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from escalate._outcomes import Answered, Failed, TierCall
from escalate.testing._items import Messages, _delay, _Played

if TYPE_CHECKING:
    from escalate.testing._fake_tier import _FakeTier

__all__ = ["choices_async", "choices_sync"]


def choices_sync(
    fake: _FakeTier, messages: Messages, response_model: type[Any], n: int
) -> TierCall:
    """Answer one request for ``n`` choices: each choice plays the fake's next item."""
    started_at, started = datetime.now(UTC), time.perf_counter()
    fake._log(messages)
    items = [fake._next_item(messages) for _ in range(n)]
    if (delay := max(_delay(item) for item in items)) > 0:
        time.sleep(delay)
    return _choices(fake, items, messages, response_model, n, started_at, started)


async def choices_async(
    fake: _FakeTier, messages: Messages, response_model: type[Any], n: int
) -> TierCall:
    """The same without blocking the loop."""
    started_at, started = datetime.now(UTC), time.perf_counter()
    fake._log(messages)
    items = [await fake._next_item_async(messages) for _ in range(n)]
    if (delay := max(_delay(item) for item in items)) > 0:
        await asyncio.sleep(delay)
    return _choices(fake, items, messages, response_model, n, started_at, started)


def _choices(
    fake: _FakeTier,
    items: list[object],
    messages: Messages,
    response_model: type[Any],
    n: int,
    started_at: datetime,
    started: float,
) -> TierCall:
    played = [fake._play(item, messages, response_model) for item in items]
    latency = time.perf_counter() - started
    broken = next((p for p in played if p.tokens is None), None)
    if broken is not None:  # a provider failure or an exception fails the request
        attempt = fake._attempt(broken, 0, started_at, latency)
        outcome = fake._finish(broken, [attempt.model_copy(update={"choices": n})], 0)
        assert not isinstance(outcome, list)
        return outcome
    tokens = [p.tokens for p in played if p.tokens is not None]
    whole = _Played(
        "answered",
        raw_output="\n".join(p.raw_output or "" for p in played),
        tokens=(tokens[0][0], sum(t[1] for t in tokens), tokens[0][2]),
        served_model=played[0].served_model,
    )
    outcomes = [_outcome(one) for one in played]
    first = next((o for o in outcomes if isinstance(o, Answered)), None)
    if first is None:
        reason = f"none of the {n} choices validated"
        whole = dataclasses.replace(whole, outcome="rejected", trigger="validation", reason=reason)
        attempt = fake._attempt(whole, 0, started_at, latency).model_copy(update={"choices": n})
        assert isinstance(outcomes[0], Failed)
        return Failed("quality", "validation", reason, outcomes[0].error, (attempt,))
    attempt = fake._attempt(whole, 0, started_at, latency).model_copy(update={"choices": n})
    return Answered(first.value, (attempt,), None, tuple(outcomes))


def _outcome(one: _Played) -> TierCall:
    if one.outcome == "answered":
        return Answered(one.value, ())
    assert one.failure is not None and one.error is not None
    return Failed(one.failure, one.trigger or "validation", one.reason or "", one.error, ())
