"""The test mode (escalate.testing.set_testing, stamina's model): retries make the same
requests and record the same attempts, without the waits between them. The engine is
driven step by step to see which Sleep steps it asks for; the calls go over the real SDKs
and HTTP to the local provider server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from escalate import AllTiersFailed, Retry, Tier, escalating, receipt_of
from escalate._call import path_of
from escalate._engine import walk
from escalate._plan import CallInfo, Sleep
from escalate._receipt import Receipt
from escalate.testing import Fault, ProviderServer, Reply, is_testing, set_testing

GOOD = {"total": 12}
RETRY = Retry(attempts=3, initial=0.5, jitter=0)


class Invoice(BaseModel):
    total: int


@pytest.fixture(autouse=True)
def _off() -> Iterator[None]:
    with set_testing(False):
        yield


@pytest.fixture(params=["openai", "anthropic"])
def tier(
    request: pytest.FixtureRequest,
    openai_tier: Callable[..., Tier],
    anthropic_tier: Callable[..., Tier],
) -> Tier:
    if request.param == "openai":
        return openai_tier("gpt-4o-mini")
    return anthropic_tier("claude-haiku-4-5")


def _model(tier: Tier) -> str:
    return tier.model.partition("/")[2]


def _drive(fn: Callable[..., Any], text: str) -> tuple[Receipt, list[float]]:
    """Walk one call of ``fn`` as the sync face does, but record the Sleep steps the
    engine asks for instead of sleeping."""
    steps = walk(path_of(fn).plan, [{"role": "user", "content": text}], CallInfo())
    slept: list[float] = []
    reply: Any = None
    while True:
        try:
            step = steps.send(reply)
        except StopIteration as done:
            return done.value[1], slept
        if isinstance(step, Sleep):
            slept.append(step.seconds)
            reply = None
        else:
            reply = step.perform_sync()


def _limited_twice(server: ProviderServer, tier: Tier) -> None:
    server.script(
        _model(tier),
        Fault(429, retry_after=5),
        Fault(429, retry_after=5),
        Reply(data=GOOD),
    )


def test_retries_do_not_wait_in_the_test_mode(server: ProviderServer, tier: Tier) -> None:
    @escalating(tiers=[tier], response_model=Invoice, retry=RETRY)
    def extract(text: str) -> str:
        return text

    _limited_twice(server, tier)
    receipt, slept = _drive(extract, "without the test mode")
    assert slept == [5.0, 5.0]  # the provider's Retry-After, as the engine asks for it
    assert [a.trigger for a in receipt.attempts] == ["rate_limit", "rate_limit", None]

    _limited_twice(server, tier)
    with set_testing(True):
        receipt, slept = _drive(extract, "in the test mode")

    assert slept == []
    assert [a.trigger for a in receipt.attempts] == ["rate_limit", "rate_limit", None]
    assert [a.purpose for a in receipt.attempts] == ["answer", "retry", "retry"]
    assert len(server.requests_for(_model(tier))) == 6
    skipped = [note for note in receipt.notes if note.startswith("test mode:")]
    assert len(skipped) == 2 and "a 5s wait" in skipped[0]


def test_both_faces_skip_the_waits(build: Any, server: ProviderServer, tier: Tier) -> None:
    extract = build(tiers=[tier], response_model=Invoice, retry=RETRY)
    _limited_twice(server, tier)

    with set_testing(True):
        receipt = receipt_of(extract("doc"))

    assert [a.outcome for a in receipt.attempts] == ["provider_error"] * 2 + ["answered"]
    assert sum(note.startswith("test mode:") for note in receipt.notes) == 2


def test_attempts_caps_the_requests_per_deployment(
    build: Any, server: ProviderServer, openai_tier: Callable[..., Tier]
) -> None:
    cheap, strong = openai_tier("gpt-4o-mini"), openai_tier("gpt-4o")
    extract = build(tiers=[cheap, strong], response_model=Invoice, retry=RETRY)
    server.script("gpt-4o-mini", Fault(503))
    server.script("gpt-4o", Reply(data=GOOD))

    with set_testing(True, attempts=1):
        receipt = receipt_of(extract("doc"))

    assert [(a.tier, a.outcome) for a in receipt.attempts] == [
        ("openai/gpt-4o-mini", "provider_error"),
        ("openai/gpt-4o", "answered"),
    ]
    assert receipt.escalations[0].trigger == "server_error"


def test_a_retry_after_above_the_policy_still_leaves_at_once(
    server: ProviderServer, tier: Tier
) -> None:
    # The test mode skips waits; it does not change what the policy decides.
    @escalating(tiers=[tier], response_model=Invoice, retry=Retry(max_retry_after=10))
    def extract(text: str) -> str:
        return text

    server.script(_model(tier), Fault(429, retry_after=60))
    with set_testing(True), pytest.raises(AllTiersFailed) as raised:
        _drive(extract, "doc")
    (attempt,) = raised.value.receipt.attempts
    assert attempt.reason is not None and "left at once" in attempt.reason


def test_the_switch_reads_back_and_nests() -> None:
    assert not is_testing()
    with set_testing(True, attempts=2):
        assert is_testing()
        with set_testing(False):
            assert not is_testing()
        assert is_testing()
    assert not is_testing()
    set_testing(True)
    try:
        assert is_testing()
    finally:
        set_testing(False)
    assert not is_testing()


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: set_testing("yes"), TypeError),
        (lambda: set_testing(True, attempts=0), ValueError),
        (lambda: set_testing(True, attempts=True), ValueError),
        (lambda: set_testing(False, attempts=2), TypeError),
    ],
)
def test_bad_arguments_are_refused(call: Callable[[], Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        call()
    assert not is_testing()
