"""The adaptive start (``escalating(adaptive=...)``): the Beta quantiles, what a receipt
says about each tier, the decayed posterior and the start decision on synthetic receipts
(a class that escalates often starts higher, one that rarely does starts cheap, a share
explores, drift is followed, unknown costs never start higher), thread safety, and the
decorator's settings. The end-to-end runs over HTTP are in test_adaptive_calls.py."""

from __future__ import annotations

import math
import random
import threading
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from escalate import AdaptiveStart, ConfigurationError, Receipt, Route, escalating
from escalate._adapting import Learner
from escalate._adaptive import TierEvidence, decide, seen_in
from escalate._beta import beta_cdf, beta_interval, beta_quantile

from .adaptive_support import FUNCTION, attempt, call, up

TWO = ("cheap", "strong")
THREE = ("cheap", "middle", "strong")
# The cheap tier costs 40% of the strong one: at a pass rate below 40% starting higher wins.
COSTS = ("0.004", "0.01")


def learner(**settings: Any) -> Learner:
    settings.setdefault("seed_from_store", False)
    return Learner(AdaptiveStart(**settings), FUNCTION)


def seen(receipt: Receipt) -> list[tuple[str, bool | None, Decimal | None]]:
    found = seen_in(
        receipt.route.start_tier,
        receipt.outcome,
        receipt.answered_by,
        receipt.attempts,
        receipt.moves,
    )
    return [(s.tier, s.passed, s.cost) for s in found]


# --- the Beta distribution --------------------------------------------------------------------


@pytest.mark.parametrize("q", [0.001, 0.05, 0.3, 0.5, 0.95, 0.999])
def test_beta_quantiles_equal_the_closed_forms(q: float) -> None:
    assert beta_quantile(q, 1, 1) == pytest.approx(q, abs=1e-9)  # uniform
    assert beta_quantile(q, 3, 1) == pytest.approx(q ** (1 / 3), abs=1e-9)  # CDF x^a
    assert beta_quantile(q, 1, 4) == pytest.approx(1 - (1 - q) ** (1 / 4), abs=1e-9)
    arcsine = math.sin(math.pi * q / 2) ** 2  # Beta(1/2, 1/2): CDF (2/pi) asin(sqrt x)
    assert beta_quantile(q, 0.5, 0.5) == pytest.approx(arcsine, abs=1e-9)


def test_beta_quantiles_equal_published_values() -> None:
    # scipy.stats.beta.ppf([0.05, 0.95], 2, 5) and (10, 10)'s median.
    assert beta_interval(2, 5) == pytest.approx((0.0628498917, 0.5818034093), abs=1e-9)
    assert beta_quantile(0.5, 10, 10) == pytest.approx(0.5, abs=1e-12)
    assert beta_cdf(0.5, 7.3, 7.3) == pytest.approx(0.5, abs=1e-12)


def _integrated_cdf(x: float, a: float, b: float, steps: int = 20_000) -> float:
    # Simpson's rule on the density: an independent check of the continued fraction.
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    h = x / steps

    def density(t: float) -> float:
        return (
            0.0 if t <= 0 else math.exp(log_norm + (a - 1) * math.log(t) + (b - 1) * math.log1p(-t))
        )

    total = density(0.0) + density(x)
    total += sum((4 if i % 2 else 2) * density(i * h) for i in range(1, steps))
    return total * h / 3


@pytest.mark.parametrize(("a", "b"), [(19.5, 41.2), (58.0, 3.0), (2.5, 2.5), (120.0, 380.0)])
def test_the_cdf_equals_the_integrated_density(a: float, b: float) -> None:
    for x in (0.1, 0.25, 0.5, 0.8, 0.95):
        assert beta_cdf(x, a, b) == pytest.approx(_integrated_cdf(x, a, b), abs=1e-7)
    low, high = beta_interval(a, b)
    assert beta_cdf(low, a, b) == pytest.approx(0.05, abs=1e-9)
    assert beta_cdf(high, a, b) == pytest.approx(0.95, abs=1e-9)


def test_the_beta_refuses_impossible_arguments() -> None:
    with pytest.raises(ValueError, match="> 0"):
        beta_cdf(0.5, 0, 1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        beta_quantile(1.5, 1, 1)


# --- what a receipt says about each tier -------------------------------------------------------


def test_a_pass_on_the_start_tier_and_a_quality_failure_below() -> None:
    assert seen(call(TWO, 0, 0)) == [("cheap", True, Decimal("0.001"))]
    assert seen(call(TWO, 0, 1, costs=COSTS)) == [
        ("cheap", False, Decimal("0.004")),
        ("strong", True, Decimal("0.01")),
    ]
    # a self-escalation or a gate is a quality failure too
    assert seen(call(TWO, 0, 1, trigger="self_escalation"))[0][1] is False
    assert seen(call(TWO, 0, 1, trigger="gate"))[0][1] is False


def test_a_call_that_started_higher_says_nothing_of_the_tiers_below() -> None:
    assert seen(call(THREE, 1, 2)) == [
        ("middle", False, Decimal("0.001")),
        ("strong", True, Decimal("0.001")),
    ]


def test_a_call_failed_everywhere_fails_every_tier_it_reached() -> None:
    assert [p for _, p, _ in seen(call(TWO, 0, None))] == [False, False]


def test_provider_failures_are_not_quality_failures() -> None:
    receipt = call(TWO, 0, 1).model_copy(
        update={
            "attempts": (
                attempt("cheap", "provider_error", trigger="server_error"),
                attempt("cheap", "provider_error", trigger="server_error"),
                attempt("strong"),
            ),
            "moves": (up("cheap", "strong", "server_error"),),
        }
    )
    # the cheap tier has no verdict; its cost (the failed requests) still counts
    assert seen(receipt) == [("cheap", None, Decimal("0.002")), ("strong", True, Decimal("0.001"))]


def test_errors_and_cancelled_calls_teach_nothing() -> None:
    for outcome in ("error", "cancelled"):
        assert seen(call(TWO, 0, 0).model_copy(update={"outcome": outcome})) == []


def test_unknown_costs_and_audits() -> None:
    receipt = call(TWO, 0, 1, costs=(None, "0.01"))
    assert seen(receipt)[0] == ("cheap", False, None)
    audited = call(TWO, 0, 0).model_copy(
        update={"attempts": (attempt("cheap"), attempt("strong", purpose="audit"))}
    )
    assert seen(audited) == [("cheap", True, Decimal("0.001"))]


def test_reasks_are_part_of_a_tiers_cost() -> None:
    receipt = call(TWO, 0, 0).model_copy(
        update={
            "attempts": (
                attempt("cheap", "rejected", "0.001", trigger="validation"),
                attempt("cheap", "answered", "0.002", purpose="reask"),
            )
        }
    )
    assert seen(receipt) == [("cheap", True, Decimal("0.003"))]


# --- the decision ------------------------------------------------------------------------------


def _feed(learn: Learner, passes: int, fails: int, tiers: tuple[str, ...] = TWO, **kw: Any) -> None:
    costs = kw.pop("costs", COSTS)
    outcomes = [True] * passes + [False] * fails
    random.Random(0).shuffle(outcomes)
    for i, passed in enumerate(outcomes):
        learn.observe(call(tiers, 0, 0 if passed else 1, costs=costs, index=i, **kw))


def test_a_class_that_escalates_often_starts_higher() -> None:
    learn = learner(explore=0, half_life=1e9)  # no forgetting: the numbers are exact
    _feed(learn, 18, 42)  # 30% pass
    start, route = learn.start(TWO, None)
    assert start == 1
    assert route.source == "adaptive" and route.start_tier == "strong"
    numbers = route.adaptive
    assert numbers is not None
    assert numbers.task_class == FUNCTION and numbers.tier == "cheap"
    assert numbers.pass_rate == pytest.approx(19 / 62)
    assert numbers.low < numbers.pass_rate < numbers.high
    assert (numbers.low, numbers.high) == pytest.approx(beta_interval(19, 43), abs=1e-3)
    # E(cheap) = 0.004 + (1 - p) * 0.01 > E(strong) = 0.01
    assert numbers.cost_start_higher == Decimal("0.01")
    assert numbers.cost_start_cheap is not None
    assert float(numbers.cost_start_cheap) == pytest.approx(0.004 + (43 / 62) * 0.01)
    assert numbers.expected_costs == {
        "cheap": numbers.cost_start_cheap,
        "strong": numbers.cost_start_higher,
    }
    assert not numbers.explored
    assert route.reason == (
        "cheap passes 31% (90%: 21-41%, 60 calls): starting on strong costs $0.0100 "
        "expected vs $0.0109"
    )


def test_a_class_that_rarely_escalates_starts_cheap() -> None:
    learn = learner(explore=0)
    _feed(learn, 55, 5)
    start, route = learn.start(TWO, None)
    assert (start, route.start_tier, route.source) == (0, "cheap", "adaptive")
    assert route.adaptive is not None and route.adaptive.pass_rate > 0.85
    assert route.reason is not None and "starting on cheap costs" in route.reason
    assert "vs $0.0100 on strong" in route.reason


def test_task_classes_are_learned_apart() -> None:
    learn = learner(explore=0)
    _feed(learn, 5, 55, task="hard")
    _feed(learn, 55, 5, task="easy")
    assert learn.start(TWO, "hard")[0] == 1
    assert learn.start(TWO, "easy")[0] == 0
    hard = learn.start(TWO, "hard")[1].adaptive
    assert hard is not None and hard.task_class == f"{FUNCTION}/hard"
    assert learn.start(TWO, None)[0] == 0  # the class without a task knows nothing yet


def test_too_few_observations_start_cheap() -> None:
    learn = learner(explore=0, min_observations=20)
    _feed(learn, 0, 10)
    start, route = learn.start(TWO, None)
    assert start == 0
    assert route.reason is not None and "too few calls to skip cheap (needs 20)" in route.reason
    assert route.adaptive is not None and route.adaptive.observations == pytest.approx(
        sum(learn.config.decay**i for i in range(10))
    )


def test_unknown_costs_never_start_higher() -> None:
    learn = learner(explore=0)
    _feed(learn, 0, 60, costs=("0.004", None))  # the strong tier's cost is never known
    start, route = learn.start(TWO, None)
    assert start == 0
    assert route.adaptive is not None
    assert route.adaptive.cost_start_cheap is None and route.adaptive.cost_start_higher is None
    assert route.reason is not None
    assert "the cost per call of strong is not measured yet" in route.reason
    assert "never higher on a guess" in route.reason


def test_three_tiers_take_the_lowest_expected_cost() -> None:
    learn = learner(explore=0, min_observations=5, half_life=1e9)
    costs = ("0.002", "0.003", "0.02")
    for i in range(40):  # cheap always fails; middle passes 3 of 4
        learn.observe(call(THREE, 0, 1 if i % 4 else 2, costs=costs, index=i))
    start, route = learn.start(THREE, None)
    e = route.adaptive.expected_costs if route.adaptive else None
    assert e is not None
    p_middle = (1 + 30) / (2 + 40)
    e_strong = 0.02
    e_middle = 0.003 + (1 - p_middle) * e_strong
    e_cheap = 0.002 + (1 - 1 / 42) * e_middle
    assert [float(e[t]) for t in THREE] == pytest.approx([e_cheap, e_middle, e_strong])
    assert start == 1 and route.start_tier == "middle"


def test_a_share_of_the_calls_that_would_start_higher_explores() -> None:
    learn = learner(explore=0.05, random=random.Random(7).random)
    _feed(learn, 10, 50)
    routes = [learn.start(TWO, None)[1] for _ in range(4000)]
    explored = [r for r in routes if r.adaptive is not None and r.adaptive.explored]
    assert 0.04 <= len(explored) / len(routes) <= 0.06
    assert all(r.start_tier == "cheap" for r in explored)
    assert all(r.start_tier == "strong" for r in routes if r not in explored)
    assert explored[0].reason is not None
    assert explored[0].reason.endswith("but this call explores: starting on cheap")


def _simulate(
    learn: Learner, pass_rate: float, calls: int, rng: random.Random, at: int
) -> list[int]:
    """Calls of a class whose cheap tier passes with ``pass_rate``: where each started."""
    starts = []
    for i in range(calls):
        start, route = learn.start(TWO, None)
        passes_at = 0 if start == 0 and rng.random() < pass_rate else 1
        receipt = call(TWO, start, passes_at, costs=COSTS, index=at + i)
        learn.observe(receipt.model_copy(update={"route": route}))
        starts.append(start)
    return starts


def _first(starts: list[int], value: int) -> int:
    # the first call from which `value` holds for ten calls in a row
    for i in range(len(starts) - 9):
        if all(s == value for s in starts[i : i + 10]):
            return i
    raise AssertionError(f"never settled on {value}: {starts}")


def test_drift_is_followed_both_ways() -> None:
    rng = random.Random(11)
    learn = learner(half_life=50, explore=0.05, random=random.Random(3).random)
    settled = _simulate(learn, 0.9, 200, rng, 0)
    assert settled[-50:].count(0) == 50  # an easy class: every call starts cheap
    # The cheap tier gets worse: the class starts higher within a bounded number of calls.
    worse = _simulate(learn, 0.1, 200, rng, 200)
    flipped = _first(worse, 1)
    assert flipped <= 80
    # and it gets better again: explored calls notice it and the class comes back down
    better = _simulate(learn, 0.9, 3000, rng, 400)
    assert _first(better, 0) <= 2500


def test_decisions_on_evidence_alone_are_pure() -> None:
    evidence = {
        "cheap": TierEvidence(
            passes=10, fails=50, verdicts=60, cost_sum=0.24, cost_weight=60, costs=60
        ),
        "strong": TierEvidence(
            passes=50, fails=0, verdicts=50, cost_sum=0.5, cost_weight=50, costs=50
        ),
    }
    first = decide(AdaptiveStart(explore=0), "c", TWO, evidence, lambda: 0.0)
    again = decide(AdaptiveStart(explore=0), "c", TWO, evidence, lambda: 0.0)
    assert first == again and first.start == 1


def test_latency_counts_at_the_price_given() -> None:
    evidence = {
        "cheap": TierEvidence(
            passes=30,
            fails=30,
            verdicts=60,
            cost_sum=0.06,
            latency_sum=600.0,
            cost_weight=60,
            costs=60,
        ),
        "strong": TierEvidence(
            passes=50,
            fails=0,
            verdicts=50,
            cost_sum=0.25,
            latency_sum=50.0,
            cost_weight=50,
            costs=50,
        ),
    }
    # $0.001 cheap + half of $0.005 strong beats $0.005 on cost alone...
    assert decide(AdaptiveStart(explore=0), "c", TWO, evidence, lambda: 0.0).start == 0
    # ...but not when the cheap tier's 10 s wait is worth a thousandth of a dollar a second
    slow = AdaptiveStart(explore=0, usd_per_second="0.001")
    assert decide(slow, "c", TWO, evidence, lambda: 0.0).start == 1


def test_one_tier_always_starts_there() -> None:
    start, route = learner().start(("only",), None)
    assert (start, route.start_tier, route.reason) == (0, "only", "only is the only tier")


# --- shared state ------------------------------------------------------------------------------


def test_threads_learning_at_once_lose_no_observation() -> None:
    learn = learner(half_life=1000)
    receipts = [call(TWO, 0, 1 if i % 3 else 0, index=i) for i in range(800)]

    def worker(part: list[Receipt]) -> None:
        for receipt in part:
            learn.observe(receipt)
            learn.start(TWO, None)

    threads = [threading.Thread(target=worker, args=(receipts[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cheap = learn.evidence(None)["cheap"]
    # decayed weights sum to (1 - d^n) / (1 - d) whatever the order they came in
    d = learn.config.decay
    assert cheap.verdicts == 800
    assert cheap.observations == pytest.approx((1 - d**800) / (1 - d))


def test_seed_evidence_counts_as_older_than_live_evidence() -> None:
    d = AdaptiveStart(half_life=10, min_observations=5).decay
    older = TierEvidence()
    newer = TierEvidence()
    inline = TierEvidence()
    from escalate._adaptive import TierSeen

    olds = [TierSeen("cheap", i % 2 == 0, Decimal("0.001"), 0.1) for i in range(7)]
    news = [TierSeen("cheap", i % 3 == 0, Decimal("0.002"), 0.2) for i in range(5)]
    for one in olds:
        older.add(one, d)
        inline.add(one, d)
    for one in news:
        newer.add(one, d)
        inline.add(one, d)
    merged = older.merged_under(newer, d)
    for name in ("passes", "fails", "cost_sum", "latency_sum", "cost_weight"):
        assert getattr(merged, name) == pytest.approx(getattr(inline, name))


# --- the decorator's settings ------------------------------------------------------------------


class Answer(BaseModel):
    text: str


@pytest.mark.parametrize(
    ("adaptive", "message"),
    [
        ("yes", r"adaptive must be True, False or an AdaptiveStart\(\.\.\.\), got 'yes'"),
        (1, "adaptive must be True"),
    ],
)
def test_a_bad_adaptive_setting_is_refused_at_decoration(adaptive: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        escalating(tiers=["openai/gpt-4o-mini"], response_model=Answer, adaptive=adaptive)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"half_life": 0}, "half_life is a number of calls > 0"),
        ({"half_life": float("inf")}, "half_life"),
        ({"explore": 1.0}, r"explore is the share of calls kept cheap, in \[0, 1\)"),
        ({"explore": -0.1}, "explore"),
        ({"explore": True}, "explore"),
        ({"prior": (1, 0)}, r"prior is a Beta prior \(a, b\) with a, b > 0"),
        ({"prior": [1, 1]}, "prior"),
        ({"min_observations": -1}, "min_observations"),
        (
            {"half_life": 10, "min_observations": 20},
            r"min_observations=20 can never be reached with half_life=10: .* levels off at 14\.9",
        ),
        ({"usd_per_second": -1}, "usd_per_second is dollars per second"),
        ({"usd_per_second": "fast"}, "usd_per_second"),
        ({"seed_from_store": "yes"}, "seed_from_store is True or False"),
        ({"seed_limit": 0}, "seed_limit must be >= 1"),
        ({"random": 4}, "random is a function"),
    ],
)
def test_bad_adaptive_start_settings_are_named(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=f"AdaptiveStart: {message}"):
        AdaptiveStart(**settings)


def test_adaptive_true_takes_the_defaults() -> None:
    from escalate._call import path_of

    @escalating(tiers=["openai/a", "openai/b"], response_model=Answer, adaptive=True)
    def ask(q: str) -> str:
        return q

    learned = path_of(ask).plan.adaptive
    assert learned is not None and learned.config == AdaptiveStart()
    assert learned.function.endswith("test_adaptive_true_takes_the_defaults.<locals>.ask")

    @escalating(tiers=["openai/a", "openai/b"], response_model=Answer)
    def plain(q: str) -> str:
        return q

    assert path_of(plain).plan.adaptive is None


def test_routes_carry_their_numbers_through_json() -> None:
    learn = learner(explore=0)
    _feed(learn, 10, 50)
    route = learn.start(TWO, None)[1]
    receipt = call(TWO, 1, 1, index=1).model_copy(update={"route": route})
    back = Receipt.from_json(receipt.to_json())
    assert back == receipt
    assert back.route.adaptive == route.adaptive
    plain = Route(start_tier="cheap")
    assert "adaptive" not in plain.model_dump_json()  # unset: a v1 route writes back as it was
    assert timedelta(0) <= receipt.finished_at - receipt.started_at


def test_concurrent_async_calls_each_teach_once() -> None:
    import asyncio

    from escalate._call import path_of
    from escalate.testing import FunctionTier

    def cheap(messages: list[dict[str, Any]]) -> object:
        return {"text": "ok"} if int(messages[-1]["content"]) % 4 else {"wrong": 1}

    @escalating(
        tiers=[FunctionTier("cheap", cheap), FunctionTier("strong", lambda m: {"text": "ok"})],
        response_model=Answer,
        adaptive=AdaptiveStart(seed_from_store=False),
    )
    async def ask(number: int) -> str:
        return str(number)

    async def main() -> list[Receipt]:
        from escalate import awith_receipt

        done = await asyncio.gather(*(awith_receipt(ask, i) for i in range(60)))
        return [receipt for _, receipt in done]

    receipts = asyncio.run(main())
    assert all(r.route.source == "adaptive" for r in receipts)
    learned = path_of(ask).plan.adaptive
    assert learned is not None
    evidence = learned.evidence(None)
    assert evidence["cheap"].verdicts == 60
    assert evidence["strong"].verdicts == 15  # the calls the cheap tier failed


def test_a_cheaper_start_past_a_tier_seen_too_little_waits_and_says_so() -> None:
    learn = learner(explore=0, min_observations=10, half_life=1e9)
    # cheap passes half; the middle tier is dear and mostly fails at the provider (no
    # verdict), so starting on the (cheaper) strong tier would skip a tier seen too little
    costs = ("0.003", "0.05", "0.002")
    for i in range(40):
        if i % 2:
            learn.observe(call(THREE, 0, 0, costs=costs, index=i))
            continue
        receipt = call(THREE, 0, 2, costs=costs, index=i)
        if i % 10:
            moves = (receipt.moves[0], up("middle", "strong", "server_error"))
            receipt = receipt.model_copy(update={"moves": moves})
        learn.observe(receipt)
    start, route = learn.start(THREE, None)
    e = route.adaptive.expected_costs if route.adaptive else None
    assert e is not None and e["strong"] < e["cheap"] < e["middle"]
    assert start == 0
    assert route.reason is not None
    assert "starting on strong would cost $0.00200 expected vs $0.0288" in route.reason
    assert route.reason.endswith(
        "but middle has too few calls to skip (needs 10): starting on cheap"
    )
