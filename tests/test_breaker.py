"""Circuit breakers: the state machine on its own (with a clock the test moves), then end
to end over the real openai/anthropic SDKs and instructor against the local provider
server, through the sync and the async face."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

import escalate
from escalate import (
    AllTiersFailed,
    Breaker,
    BreakerOpen,
    ConfigurationError,
    Receipt,
    Retry,
    Tier,
    escalating,
    receipt_of,
)
from escalate.events import AttemptFinished, BreakerClosed, BreakerOpened, Event, MovedSideways
from escalate.testing import (
    Breakers,
    Fault,
    ManualClock,
    ProviderServer,
    Reply,
    ScriptedTier,
    breakers,
)

from .conftest import KEY

GOOD = {"total": 12}
NO_RETRY = Retry(attempts=1)
RETRY3 = Retry(attempts=3, initial=0, jitter=0)


class Invoice(BaseModel):
    total: int


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


@pytest.fixture
def registry(clock: ManualClock) -> Iterator[Breakers]:
    with breakers(clock=clock) as fresh:
        yield fresh


# --- the state machine ----------------------------------------------------------------------

KEY_A = ("openai", "gpt-4o-mini", "http://a")
KEY_B = ("openai", "gpt-4o-mini", "http://b")


def _fail(
    registry: Breakers, config: Breaker, key: Any = KEY_A, retry_after: float | None = None
) -> Any:
    ticket = registry.admit(key, config)
    assert isinstance(ticket, escalate._breaker.Ticket), ticket
    return registry.report(ticket, "failure", reason="HTTP 503", retry_after=retry_after)


def _succeed(registry: Breakers, config: Breaker, key: Any = KEY_A) -> Any:
    ticket = registry.admit(key, config)
    assert isinstance(ticket, escalate._breaker.Ticket), ticket
    return registry.report(ticket, "success")


def _refused(registry: Breakers, config: Breaker, key: Any = KEY_A) -> Any:
    refusal = registry.admit(key, config)
    assert isinstance(refusal, escalate._breaker.Refusal), refusal
    return refusal


def test_a_run_of_provider_failures_opens_it_for_the_cooldown(
    registry: Breakers, clock: ManualClock
) -> None:
    config = Breaker(failures=3, cooldown=30)
    assert _fail(registry, config) is None and _fail(registry, config) is None
    assert registry.state(KEY_A) == "closed"

    change = _fail(registry, config)

    assert (change.kind, change.failures, change.cooldown, change.probe) == ("opened", 3, 30, False)
    assert "3 provider failures in a row" in change.reason and "HTTP 503" in change.reason
    assert registry.state(KEY_A) == "open"
    refusal = _refused(registry, config)
    assert refusal.remaining == 30 and "3 provider failures in a row" in refusal.reason
    clock.advance(29.9)
    assert _refused(registry, config).remaining == pytest.approx(0.1)


def test_a_success_resets_the_run(registry: Breakers) -> None:
    config = Breaker(failures=3)
    for _ in range(5):
        _fail(registry, config)
        _fail(registry, config)
        assert _succeed(registry, config) is None
    assert registry.state(KEY_A) == "closed"


def test_after_the_cooldown_one_probe_goes_and_its_success_closes_it(
    registry: Breakers, clock: ManualClock
) -> None:
    config = Breaker(failures=1, cooldown=10)
    _fail(registry, config)
    clock.advance(10)
    assert registry.state(KEY_A) == "half_open"

    probe = registry.admit(KEY_A, config)
    assert isinstance(probe, escalate._breaker.Ticket) and probe.probe
    other = _refused(registry, config)
    assert other.remaining is None and "probe" in other.reason

    change = registry.report(probe, "success")

    assert change is not None and (change.kind, change.probe) == ("closed", True)
    assert registry.state(KEY_A) == "closed"
    assert _fail(registry, Breaker(failures=2)) is None  # a fresh run: one failure is not two


def test_a_failed_probe_opens_it_again_for_a_new_cooldown(
    registry: Breakers, clock: ManualClock
) -> None:
    config = Breaker(failures=1, cooldown=10)
    _fail(registry, config)
    clock.advance(10)

    change = _fail(registry, config)

    assert (change.kind, change.probe) == ("opened", True)
    assert "the probe request failed" in change.reason
    assert _refused(registry, config).remaining == 10
    clock.advance(10)
    assert registry.state(KEY_A) == "half_open"


def test_a_probe_that_ends_neither_way_frees_its_place(
    registry: Breakers, clock: ManualClock
) -> None:
    config = Breaker(failures=1, cooldown=10)
    _fail(registry, config)
    clock.advance(10)
    probe = registry.admit(KEY_A, config)
    assert isinstance(probe, escalate._breaker.Ticket)
    _refused(registry, config)

    registry.release(probe)  # its call was cancelled

    assert registry.state(KEY_A) == "half_open"
    again = registry.admit(KEY_A, config)
    assert isinstance(again, escalate._breaker.Ticket) and again.probe


def test_retry_after_is_the_cooldown_up_to_max_cooldown(
    registry: Breakers, clock: ManualClock
) -> None:
    config = Breaker(failures=1, cooldown=30, max_cooldown=100)
    change = _fail(registry, config, retry_after=5)
    assert change.cooldown == 5 and "Retry-After" in change.reason
    clock.advance(5)

    change = _fail(registry, config, retry_after=3600)  # the probe fails, asking for an hour

    assert change.cooldown == 100
    clock.advance(99)
    assert registry.state(KEY_A) == "open"
    clock.advance(1)
    assert registry.state(KEY_A) == "half_open"


def test_a_share_of_failures_in_the_window_opens_it(registry: Breakers, clock: ManualClock) -> None:
    config = Breaker(failures=3, share=0.5, window=60)
    for _ in range(2):
        _succeed(registry, config)
        _fail(registry, config)
        clock.advance(1)
    _succeed(registry, config)
    change = _fail(registry, config)  # 3 failures of 6 requests: never 3 in a row

    assert change is not None and change.kind == "opened"
    assert "3 of 6 requests" in change.reason


def test_old_outcomes_leave_the_window(registry: Breakers, clock: ManualClock) -> None:
    config = Breaker(failures=3, share=0.5, window=60)
    _fail(registry, config)
    _fail(registry, config)
    _succeed(registry, config)
    clock.advance(61)
    _succeed(registry, config)
    assert _fail(registry, config) is None  # 1 failure of 2 in the window
    assert registry.state(KEY_A) == "closed"


def test_breakers_of_different_deployments_are_apart(registry: Breakers) -> None:
    config = Breaker(failures=1)
    _fail(registry, config, KEY_A)
    assert registry.state(KEY_A) == "open" and registry.state(KEY_B) == "closed"
    assert _succeed(registry, config, KEY_B) is None


def test_a_request_admitted_before_it_opened_cannot_close_it(registry: Breakers) -> None:
    config = Breaker(failures=1)
    early = registry.admit(KEY_A, config)
    assert isinstance(early, escalate._breaker.Ticket)
    _fail(registry, config)

    assert registry.report(early, "success") is None
    assert registry.state(KEY_A) == "open"


def test_exactly_one_probe_among_threads(registry: Breakers, clock: ManualClock) -> None:
    config = Breaker(failures=1, cooldown=1)
    _fail(registry, config)
    clock.advance(1)
    start = threading.Barrier(16)

    def admit(_: int) -> object:
        start.wait()
        return registry.admit(KEY_A, config)

    with ThreadPoolExecutor(16) as pool:
        leaves = list(pool.map(admit, range(16)))

    probes = [leave for leave in leaves if isinstance(leave, escalate._breaker.Ticket)]
    assert len(probes) == 1 and probes[0].probe


def test_switched_off_it_admits_everything(registry: Breakers) -> None:
    for config in (None, Breaker(failures=1, enabled=False)):
        for _ in range(3):
            ticket = registry.admit(KEY_A, config)
            assert isinstance(ticket, escalate._breaker.Ticket)
            assert registry.report(ticket, "failure", reason="HTTP 500") is None
    assert registry.state(KEY_A) == "closed"
    escalate.set_breakers(False)
    try:
        for _ in range(3):
            assert _fail(registry, Breaker(failures=1)) is None
    finally:
        escalate.set_breakers(True)
    assert registry.state(KEY_A) == "closed"


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"failures": 0}, "failures must be an int >= 1"),
        ({"failures": 2.5}, "failures must be an int >= 1"),
        ({"share": 0}, "share must be a number above 0"),
        ({"share": 1.5}, "share must be a number above 0"),
        ({"cooldown": -1}, "cooldown must be a number of seconds > 0"),
        ({"window": float("inf")}, "window must be a number of seconds > 0"),
        ({"cooldown": 400}, "cooldown (400) is above max_cooldown (300.0)"),
        ({"enabled": "no"}, "enabled must be True or False"),
    ],
)
def test_bad_settings_are_refused_when_written(settings: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Breaker(**settings)
    assert words in str(raised.value)


def test_a_tier_breaker_that_is_not_one_is_refused_at_decoration() -> None:
    with pytest.raises(ConfigurationError, match=r"tiers\[1\]: breaker must be a Breaker"):

        @escalating(
            tiers=["openai/gpt-4o-mini", Tier("openai/gpt-4o", breaker=5)], response_model=Invoice
        )  # type: ignore[arg-type]
        def extract(text: str) -> str:
            return text

    with pytest.raises(ConfigurationError, match="breaker must be a Breaker"):
        ScriptedTier("cheap", breaker="on")  # type: ignore[arg-type]


def test_the_default_is_on_and_conservative() -> None:
    assert Tier("openai/gpt-4o-mini").breaker == Breaker()
    default = Breaker()
    assert default.enabled and default.share is None
    # One call's retries never open it alone.
    assert default.failures > Retry().attempts
    assert escalate._breaker.breakers_enabled()


# --- end to end -----------------------------------------------------------------------------


@pytest.fixture(params=["openai", "anthropic"])
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pair(
    provider: str, openai_tier: Callable[..., Tier], anthropic_tier: Callable[..., Tier]
) -> tuple[Tier, Tier]:
    if provider == "openai":
        return openai_tier("gpt-4o-mini"), openai_tier("gpt-4o")
    return anthropic_tier("claude-haiku-4-5"), anthropic_tier("claude-sonnet-4-5")


def _model(tier: Tier) -> str:
    return tier.model.partition("/")[2]


def _key(tier: Tier) -> tuple[str, str, str | None]:
    provider, _, model = tier.model.partition("/")
    assert tier.base_url is not None
    return provider, model, tier.base_url.rstrip("/")


def _with_spare(tier: Tier, breaker: Breaker | None) -> Tier:
    spare = Tier(f"{tier.model}-eu", base_url=tier.base_url, api_key=KEY, name="eu")
    return Tier(tier.model, base_url=tier.base_url, api_key=KEY, fallbacks=[spare], breaker=breaker)


def _events(seen: list[Event], kind: type[Any]) -> list[Any]:
    return [event for event in seen if isinstance(event, kind)]


def test_a_failing_deployment_is_skipped_until_a_probe_closes_it(
    build: Any, server: ProviderServer, pair: tuple[Tier, Tier], registry: Breakers, clock: Any
) -> None:
    cheap, strong = pair
    tier = _with_spare(cheap, Breaker(failures=3, cooldown=30))
    seen: list[Event] = []
    extract = build(tiers=[tier, strong], response_model=Invoice, retry=RETRY3, hooks=[seen.append])
    server.script(_model(cheap), Fault(503), Fault(503), Fault(503))
    server.script(f"{_model(cheap)}-eu", Reply(data=GOOD), Reply(data=GOOD))

    first = receipt_of(extract("a"))

    assert [a.outcome for a in first.attempts] == ["provider_error"] * 3 + ["answered"]
    (opened,) = _events(seen, BreakerOpened)
    assert (opened.deployment, opened.tier, opened.failures, opened.cooldown_s) == (
        cheap.display_name,
        cheap.display_name,
        3,
        30,
    )
    assert any("opened" in note for note in first.notes)
    assert registry.state(_key(cheap)) == "open"

    seen.clear()
    second = receipt_of(extract("b"))

    assert len(server.requests_for(_model(cheap))) == 3  # no request reached it
    skipped, answered = second.attempts
    assert (skipped.outcome, skipped.trigger, skipped.deployment) == (
        "skipped",
        "breaker",
        cheap.display_name,
    )
    assert skipped.cost_usd == Decimal(0) and skipped.input_tokens is None
    assert skipped.reason is not None and "for another 30s" in skipped.reason
    assert answered.deployment == "eu" and second.answered_by == cheap.display_name
    (move,) = second.moves
    assert (move.kind, move.trigger, move.to_deployment) == ("sideways", "breaker", "eu")
    assert second.spent_attempts == 0 and second.cost_usd == answered.cost_usd
    assert [type(e) for e in seen if isinstance(e, AttemptFinished | MovedSideways)] == [
        AttemptFinished,
        MovedSideways,
        AttemptFinished,
    ]

    clock.advance(30)
    server.script(_model(cheap), Reply(data=GOOD))
    seen.clear()
    third = receipt_of(extract("c"))

    (probe,) = third.attempts
    assert probe.outcome == "answered" and probe.deployment == cheap.display_name
    (closed,) = _events(seen, BreakerClosed)
    assert closed.deployment == cheap.display_name
    assert registry.state(_key(cheap)) == "closed"
    assert len(server.requests_for(_model(cheap))) == 4


@pytest.mark.parametrize("retry_after_format", ["seconds", "date"])
def test_retry_after_is_the_cooldown_and_a_failed_probe_reopens_it(
    build: Any,
    server: ProviderServer,
    pair: tuple[Tier, Tier],
    registry: Breakers,
    clock: ManualClock,
    retry_after_format: Any,
) -> None:
    cheap, strong = pair
    tier = Tier(cheap.model, base_url=cheap.base_url, api_key=KEY, breaker=Breaker(failures=1))
    seen: list[Event] = []
    extract = build(tiers=[tier, strong], response_model=Invoice, retry=RETRY3, hooks=[seen.append])
    # Above Retry.max_retry_after (30 s): the deployment is left at once, and the breaker
    # stays open as long as the provider asked.
    limited = Fault(429, retry_after=120, retry_after_format=retry_after_format)
    server.script(_model(cheap), limited)
    server.respond(_model(strong), lambda request: Reply(data=GOOD))

    first = receipt_of(extract("a"))

    assert [(a.tier, a.outcome) for a in first.attempts] == [
        (cheap.display_name, "provider_error"),
        (strong.display_name, "answered"),
    ]
    (opened,) = _events(seen, BreakerOpened)
    assert 118 <= opened.cooldown_s <= 120 and "Retry-After" in opened.reason

    clock.advance(100)
    second = receipt_of(extract("b"))  # still open: skipped, and up at once
    assert [a.outcome for a in second.attempts] == ["skipped", "answered"]
    assert (second.moves[0].kind, second.moves[0].trigger) == ("up", "breaker")
    assert len(server.requests_for(_model(cheap))) == 1

    clock.advance(21)
    server.script(_model(cheap), Fault(500))
    seen.clear()
    third = receipt_of(extract("c"))  # the probe goes, fails: open again, and not retried

    assert [a.outcome for a in third.attempts] == ["provider_error", "answered"]
    assert third.attempts[0].reason is not None
    assert "circuit breaker opened" in third.attempts[0].reason
    (reopened,) = _events(seen, BreakerOpened)
    assert reopened.probe and reopened.cooldown_s == 30
    assert len(server.requests_for(_model(cheap))) == 2

    clock.advance(30)
    server.script(_model(cheap), Reply(data=GOOD))
    fourth = receipt_of(extract("d"))
    assert fourth.answered_by == cheap.display_name
    assert registry.state(_key(cheap)) == "closed"


def test_every_function_shares_a_deployment_s_breaker_and_no_other(
    build: Any, server: ProviderServer, pair: tuple[Tier, Tier], registry: Breakers
) -> None:
    cheap, strong = pair
    config = Breaker(failures=2)

    def tiers() -> list[Tier]:  # each function builds its own tiers and clients
        own = Tier(cheap.model, base_url=cheap.base_url, api_key=KEY, breaker=config)
        return [own, Tier(strong.model, base_url=strong.base_url, api_key=KEY)]

    def first_prompt(text: str) -> str:
        return f"first: {text}"

    def second_prompt(text: str) -> str:
        return f"second: {text}"

    first = build(first_prompt, tiers=tiers(), response_model=Invoice, retry=RETRY3)
    second = build(second_prompt, tiers=tiers(), response_model=Invoice, retry=RETRY3)
    server.script(_model(cheap), Fault(502), Fault(502))
    server.respond(_model(strong), lambda request: Reply(data=GOOD))

    assert receipt_of(first("x")).answered_by == strong.display_name
    receipt = receipt_of(second("y"))

    assert [a.outcome for a in receipt.attempts] == ["skipped", "answered"]
    assert len(server.requests_for(_model(cheap))) == 2  # all from the first function
    assert registry.state(_key(strong)) == "closed"

    # The same model behind another base URL is another deployment, with its own breaker.
    with ProviderServer(tokens="approx") as elsewhere:
        base = elsewhere.openai_base_url if cheap.model.startswith("openai") else elsewhere.url
        other = Tier(cheap.model, base_url=base, api_key=KEY, breaker=config)
        third = build(first_prompt, tiers=[other], response_model=Invoice)
        elsewhere.script(_model(cheap), Reply(data=GOOD))
        assert receipt_of(third("z")).attempts[0].outcome == "answered"
    assert registry.state(_key(cheap)) == "open"


def test_exactly_one_probe_among_concurrent_async_calls(
    server: ProviderServer, pair: tuple[Tier, Tier], registry: Breakers, clock: ManualClock
) -> None:
    cheap, _ = pair
    tier = _with_spare(cheap, Breaker(failures=1, cooldown=5))

    @escalating(tiers=[tier], response_model=Invoice, retry=NO_RETRY)
    async def extract(text: str) -> str:
        return text

    server.script(_model(cheap), Fault(503))
    server.respond(f"{_model(cheap)}-eu", lambda request: Reply(data=GOOD))
    asyncio.run(extract("open it"))
    clock.advance(5)
    server.script(_model(cheap), Reply(data=GOOD, delay=0.3))  # the probe takes its time

    async def many() -> list[Any]:
        return await asyncio.gather(*(extract(f"doc {n}") for n in range(8)))

    receipts = [receipt_of(result) for result in asyncio.run(many())]

    assert len(server.requests_for(_model(cheap))) == 2  # the one that opened it, one probe
    probes = [r for r in receipts if r.attempts[0].outcome == "answered"]
    skipped = [r for r in receipts if r.attempts[0].outcome == "skipped"]
    assert len(probes) == 1 and len(skipped) == 7
    assert all("probe" in (r.attempts[0].reason or "") for r in skipped)
    assert all(r.answered_by == cheap.display_name for r in receipts)
    assert registry.state(_key(cheap)) == "closed"


def test_exactly_one_probe_among_threads_calling_at_once(
    server: ProviderServer, pair: tuple[Tier, Tier], registry: Breakers, clock: ManualClock
) -> None:
    cheap, _ = pair
    tier = _with_spare(cheap, Breaker(failures=1, cooldown=5))

    @escalating(tiers=[tier], response_model=Invoice, retry=NO_RETRY)
    def extract(text: str) -> str:
        return text

    server.script(_model(cheap), Fault(503))
    server.respond(f"{_model(cheap)}-eu", lambda request: Reply(data=GOOD))
    extract("open it")
    clock.advance(5)
    server.script(_model(cheap), Reply(data=GOOD, delay=0.3))
    start = threading.Barrier(8)

    def call(n: int) -> Receipt:
        start.wait()
        return receipt_of(extract(f"doc {n}"))

    with ThreadPoolExecutor(8) as pool:
        receipts = list(pool.map(call, range(8)))

    assert len(server.requests_for(_model(cheap))) == 2
    assert sorted(r.attempts[0].outcome for r in receipts) == ["answered"] + ["skipped"] * 7
    assert registry.state(_key(cheap)) == "closed"


# --- what counts, and what switches it off (fake tiers: no HTTP needed) ----------------------


def test_quality_failures_and_unmatched_errors_never_count(build: Any, registry: Breakers) -> None:
    config = Breaker(failures=1)
    cheap = ScriptedTier("cheap", {"total": "twelve"}, {"total": "x"}, breaker=config)
    strong = ScriptedTier("strong", GOOD, GOOD)
    extract = build(tiers=[cheap, strong], response_model=Invoice)
    for text in ("a", "b"):
        assert receipt_of(extract(text)).attempts[0].trigger == "validation"
    assert registry.state(cheap.breaker_key) == "closed"

    refused = ScriptedTier("refused", Fault(401), Fault(401), breaker=config)
    strict = build(tiers=[refused], response_model=Invoice)
    for _ in range(2):
        with pytest.raises(escalate.testing.ScriptedFault):
            strict("a")
    assert registry.state(refused.breaker_key) == "closed"


def test_timeouts_count_unless_the_tier_escalates_on_them(
    build: Any, server: ProviderServer, openai_tier: Callable[..., Tier], registry: Breakers
) -> None:
    waits = ScriptedTier("waits", escalate.testing.Timeout(), breaker=Breaker(failures=1))
    extract = build(tiers=[waits, ScriptedTier("strong", GOOD)], response_model=Invoice)
    assert receipt_of(extract("a")).attempts[0].trigger == "timeout"
    assert registry.state(waits.breaker_key) == "open"  # a provider failure: it counts

    # A tier set to escalate on timeouts calls the deployment too slow, not failing.
    slow = openai_tier(
        "gpt-4o-mini", timeout=0.2, on_timeout="escalate", breaker=Breaker(failures=1)
    )
    server.script("gpt-4o-mini", Reply(data=GOOD, delay=1))
    extract = build(tiers=[slow, ScriptedTier("strong", GOOD)], response_model=Invoice)
    assert receipt_of(extract("b")).attempts[0].trigger == "slow"
    assert registry.state(_key(slow)) == "closed"


def test_fakes_of_the_same_name_have_breakers_of_their_own(build: Any, registry: Breakers) -> None:
    config = Breaker(failures=1)
    dead = ScriptedTier("cheap", Fault(500), breaker=config)
    build(tiers=[dead, ScriptedTier("strong", GOOD)], response_model=Invoice)("a")
    assert registry.state(dead.breaker_key) == "open"

    fresh = ScriptedTier("cheap", GOOD, breaker=config)
    receipt = receipt_of(build(tiers=[fresh], response_model=Invoice)("b"))
    assert receipt.attempts[0].outcome == "answered"


@pytest.mark.parametrize("switch", ["tier None", "enabled=False", "process"])
def test_switched_off_a_dead_deployment_is_always_tried(
    build: Any, registry: Breakers, switch: str
) -> None:
    breaker: Breaker | None = Breaker(failures=1)
    if switch == "tier None":
        breaker = None
    elif switch == "enabled=False":
        breaker = Breaker(failures=1, enabled=False)
    dead = ScriptedTier("cheap", Fault(503), Fault(503), Fault(503), breaker=breaker)
    strong = ScriptedTier("strong", GOOD, GOOD, GOOD)
    extract = build(tiers=[dead, strong], response_model=Invoice, retry=NO_RETRY)
    if switch == "process":
        escalate.set_breakers(False)
    try:
        receipts = [receipt_of(extract(text)) for text in "abc"]
    finally:
        escalate.set_breakers(True)
    assert all(r.attempts[0].outcome == "provider_error" for r in receipts)
    assert dead.remaining == 0 and registry.state(dead.breaker_key) == "closed"


def test_when_every_deployment_is_skipped_the_call_fails_with_the_skips(
    build: Any, registry: Breakers
) -> None:
    config = Breaker(failures=1)
    only = ScriptedTier("only", Fault(503), breaker=config)
    extract = build(tiers=[only], response_model=Invoice)
    with pytest.raises(AllTiersFailed):
        extract("a")

    with pytest.raises(AllTiersFailed) as raised:
        extract("b")

    (attempt,) = raised.value.receipt.attempts
    assert (attempt.outcome, attempt.trigger, attempt.cost_usd) == ("skipped", "breaker", 0)
    assert isinstance(raised.value.__cause__, BreakerOpen)
    assert "skipped" in str(raised.value)
    assert raised.value.receipt.spent_attempts == 0


def test_a_cancelled_probe_lets_the_next_call_probe(registry: Breakers, clock: ManualClock) -> None:
    from escalate.testing import Reply as FakeReply

    cheap = ScriptedTier(
        "cheap",
        Fault(503),
        FakeReply(data=GOOD, delay=5),  # the probe: cancelled while it waits
        GOOD,  # the next probe
        breaker=Breaker(failures=1, cooldown=1),
    )

    @escalating(tiers=[cheap, ScriptedTier("strong", GOOD)], response_model=Invoice)
    async def extract(text: str) -> str:
        return text

    async def scenario() -> Receipt:
        await extract("open it")
        clock.advance(1)
        probe = asyncio.create_task(extract("probe"))
        await asyncio.sleep(0.05)
        assert registry.state(cheap.breaker_key) == "half_open"
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        return receipt_of(await extract("next"))

    receipt = asyncio.run(scenario())

    assert receipt.attempts[0].outcome == "answered" and receipt.answered_by == "cheap"
    assert registry.state(cheap.breaker_key) == "closed"
