"""The adaptive start and the receipt store, over SQLite and PostgreSQL: a function is
seeded at first use from the store's recent receipts of its class (one bounded query, off
the caller's thread, each receipt counted once), and the report shows each adaptive task
class's start tiers and its cheap tier's pass rate with its interval."""

from __future__ import annotations

import io
import json
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import escalate
from escalate import AdaptiveStart, Receipt, receipt_of
from escalate._beta import beta_interval
from escalate._call import path_of
from escalate._sinks import add_sink, remove_sink
from escalate.cli import main
from escalate.store import Store, build_report, print_report, report_csv, report_json
from tests.adaptive_support import call
from tests.store.test_store import make_solver

TIERS = ("cheap", "strong")


def _adaptive(**settings: Any) -> AdaptiveStart:
    settings.setdefault("min_observations", 10)
    settings.setdefault("explore", 0)
    return AdaptiveStart(**settings)


def test_a_function_is_seeded_from_the_stores_recent_receipts_of_its_class(
    store_url: str, use_store: Callable[..., None]
) -> None:
    solve = make_solver("seeded", task="hard-ones", adaptive=_adaptive(seed_limit=50))
    function = path_of(solve).plan.function
    # 80 earlier calls of this class, by another process: the cheap tier failed nearly
    # every time; and calls of another task class, which must not count.
    earlier = [
        call(
            TIERS,
            0,
            0 if i % 10 == 0 else 1,
            costs=("0.004", "0.01"),
            task="hard-ones",
            index=i,
            function=function,
        )
        for i in range(80)
    ]
    other = [call(TIERS, 0, 0, task="easy", index=i, function=function) for i in range(30)]
    Store(store_url).write([*earlier, *other])
    use_store(store_url)

    first = receipt_of(solve("an easy one"))  # the seed is read in the background
    assert first.route.source == "adaptive" and first.route.start_tier == "cheap"
    learner = path_of(solve).plan.adaptive
    assert learner is not None
    assert learner.wait_seeded("hard-ones", timeout=30)

    cheap = learner.evidence("hard-ones")["cheap"]
    # the 50 most recent stored calls (bounded), plus the live one, each counted once even
    # if the writer stored the live one before the seed was read
    assert cheap.verdicts == 51
    second = receipt_of(solve("a hard one"))
    route = second.route
    assert (route.source, route.start_tier) == ("adaptive", "strong")
    assert route.adaptive is not None and route.adaptive.pass_rate < 0.2
    assert route.adaptive.task_class == f"{function}/hard-ones"


def test_a_store_that_cannot_be_read_leaves_the_process_to_learn_alone(
    tmp_path: Any, use_store: Callable[..., None]
) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the database's directory should be")
    use_store(f"sqlite:///{blocked}/receipts.db")
    solve = make_solver("unseeded", adaptive=_adaptive())
    assert receipt_of(solve("an easy one")).route.start_tier == "cheap"
    learner = path_of(solve).plan.adaptive
    assert learner is not None and learner.wait_seeded(None, timeout=30)
    assert learner.evidence(None)["cheap"].verdicts == 1  # the live call alone


def test_the_report_shows_each_adaptive_classs_starts_and_cheap_pass_rate(
    store_url: str, use_store: Callable[..., None]
) -> None:
    use_store(store_url)
    solve = make_solver(
        "routed",
        task=lambda q: q.split()[0],
        adaptive=_adaptive(explore=0.2, random=random.Random(5).random, seed_from_store=False),
    )
    plain = make_solver("plain")
    seen: list[Receipt] = []

    def keep(receipt: Receipt) -> None:
        seen.append(receipt)

    add_sink(keep)
    try:
        for i in range(40):
            solve(f"hard question {i}")  # the cheap tier fails "hard" questions
            solve(f"easy question {i}")
        plain("easy")
    finally:
        remove_sink(keep)
    assert escalate.flush(30)

    report = build_report(Store(store_url))
    classes = {(a.function.rsplit(".", 1)[-1], a.task): a for a in report.adaptive}
    assert set(classes) == {("routed", "hard"), ("routed", "easy")}  # plain is not adaptive
    for (_, task), figure in classes.items():
        mine = [r for r in seen if r.task == task and r.function.endswith("routed")]
        assert figure.calls == figure.adaptive_calls == len(mine) == 40
        assert figure.starts == dict(Counter(r.route.start_tier for r in mine))
        assert figure.explored == sum(
            bool(r.route.adaptive and r.route.adaptive.explored) for r in mine
        )
        assert figure.cheap_tier == "cheap"
        started_cheap = [r for r in mine if r.route.start_tier == "cheap"]
        passes = sum(r.answered_by == "cheap" for r in started_cheap)
        assert (figure.passes, figure.fails) == (passes, len(started_cheap) - passes)
        assert (figure.low, figure.high) == beta_interval(1 + passes, 1 + figure.fails)
        assert figure.latest == mine[-1].route.reason
    hard, easy = classes[("routed", "hard")], classes[("routed", "easy")]
    assert hard.starts["strong"] > 20 and hard.explored > 0 and hard.passes == 0
    assert easy.starts == {"cheap": 40} and easy.pass_rate is not None and easy.pass_rate > 0.9

    data = json.loads(report_json(report))
    rows = {row["task"]: row for row in data["adaptive"]}
    assert rows["easy"]["start_shares"] == {"cheap": 1.0}
    assert rows["hard"]["high"] == hard.high
    csv = report_csv(report)
    assert "# Adaptive starts by task class" in csv
    assert "cheap passes" in csv
    out = io.StringIO()
    print_report(report, out, width=400)
    text = out.getvalue()
    assert "Adaptive starts by task class" in text
    assert f"cheap {easy.start_share('cheap'):.0%}" in text

    printed = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(printed):
        assert main(["report", "--store", store_url, "--format", "json"]) == 0
    assert {row["task"] for row in json.loads(printed.getvalue())["adaptive"]} == {"hard", "easy"}
