"""The audit's decisions in the engine alone, driven by hand as in ``tests/test_engine.py``:
no HTTP, no face, no SDK. The test plays the face: it reads the steps the walk yields and
sends back the outcomes it chooses."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

import pytest

from escalate import Audit
from escalate._answers import shape_of
from escalate._audit import check_audit
from escalate._auditing import Deferred
from escalate._plan import Call, CallInfo, EngineTier, Plan, Sleep
from escalate._receipt import Receipt
from escalate.events import Audited, Finished

from .test_engine import MESSAGES, Face, Invoice, answered, invalid, names, plan, provider_failure
from .test_engine import tier as make_tier


def audited_plan(*tiers: EngineTier, **audit: Any) -> Plan:
    audit.setdefault("share", 1.0)
    checked = check_audit(Audit(**audit), tiers, shape_of(Invoice))
    return plan(*tiers, audit=checked)


def two(**audit: Any) -> Plan:
    return audited_plan(make_tier("cheap"), make_tier("strong"), **audit)


def test_an_accepted_answer_is_followed_by_the_audit_request() -> None:
    face = Face(two(key="total"))
    step = face.reply(answered)  # the cheap answer passed

    assert names(step) == "strong-1" and step.messages == MESSAGES
    assert step.response_model is Invoice and step.choices == 1
    value, receipt = face.finish(lambda s: answered(s, Invoice(total=13.0)))

    assert value == Invoice(total=12.5)  # the audited answer, never the audit's
    assert receipt.answered_by == "cheap" and receipt.outcome == "answered"
    assert [(a.tier, a.purpose) for a in receipt.attempts] == [
        ("cheap", "answer"),
        ("strong", "audit"),
    ]
    assert receipt.moves == () and not receipt.escalated
    assert receipt.audit is not None and receipt.audit.agreed is False
    assert (receipt.audit.answer_key, receipt.audit.audit_key) == ("12.5", "13")
    assert receipt.cost_usd == sum(a.cost_usd or 0 for a in receipt.attempts)


def test_a_provider_failure_of_the_audit_is_not_retried() -> None:
    face = Face(two())
    face.reply(answered)

    value, receipt = face.finish(provider_failure)  # no Sleep step: the walk ends

    assert value == Invoice(total=12.5)
    assert [a.outcome for a in receipt.attempts] == ["answered", "provider_error"]
    assert receipt.audit is not None and receipt.audit.agreed is None
    assert receipt.audit.answer_key is not None and receipt.audit.audit_key is None


def test_an_invalid_audit_answer_leaves_the_verdict_unknown() -> None:
    face = Face(two())
    face.reply(answered)

    _, receipt = face.finish(invalid)

    assert receipt.attempts[-1].purpose == "audit" and receipt.attempts[-1].trigger == "validation"
    assert receipt.audit is not None and receipt.audit.agreed is None


def test_an_error_thrown_into_the_audit_is_noted_and_the_call_answers() -> None:
    face = Face(two())
    face.reply(answered)

    with pytest.raises(StopIteration) as done:
        face.steps.throw(RuntimeError("the audit's client broke"))

    value, receipt = done.value.value
    assert value == Invoice(total=12.5) and receipt.outcome == "answered"
    assert receipt.audit is not None and receipt.audit.agreed is None
    assert "RuntimeError: the audit's client broke" in receipt.notes[-1]


def test_a_cancellation_during_the_audit_stops_the_call() -> None:
    face = Face(two())
    face.reply(answered)

    with pytest.raises(asyncio.CancelledError):
        face.steps.throw(asyncio.CancelledError())


def test_an_answer_on_the_auditing_tier_is_not_audited() -> None:
    face = Face(two())
    face.reply(invalid)  # up to strong

    _, receipt = face.finish(answered)

    assert receipt.answered_by == "strong" and receipt.audit is None
    assert [a.purpose for a in receipt.attempts] == ["answer", "answer"]


def test_a_middle_tier_audits_only_the_tiers_below_it() -> None:
    tiers = (make_tier("cheap"), make_tier("mid"), make_tier("strong"))
    face = Face(audited_plan(*tiers, tier="mid"))

    assert names(face.reply(answered)) == "mid-1"
    _, receipt = face.finish(answered)

    assert receipt.audit is not None and (receipt.audit.tier, receipt.audit.of_tier) == (
        "mid",
        "cheap",
    )


def test_share_zero_never_asks_the_source() -> None:
    asked: list[float] = []

    def source() -> float:
        asked.append(0.0)
        return 0.0

    face = Face(two(share=0.0, sample=source))
    _, receipt = face.finish(answered)

    assert receipt.audit is None and asked == []


def test_the_source_decides_below_the_share() -> None:
    draws = iter([0.3, 0.1])
    the_plan = two(share=0.2, sample=lambda: next(draws))

    _, first = Face(the_plan).finish(answered)  # 0.3: not audited
    second = Face(the_plan)
    assert isinstance(second.reply(answered), Call)  # 0.1: audited

    assert first.audit is None


def test_events_say_audited_before_finished() -> None:
    heard: list[Any] = []
    face = Face(two(), CallInfo(on_event=heard.append))
    face.reply(answered)
    _, receipt = face.finish(answered)

    kinds = [type(e).__name__ for e in heard]
    assert kinds[-2:] == ["Audited", "Finished"]
    audited = heard[-2]
    assert isinstance(audited, Audited) and audited.receipt == receipt
    assert isinstance(heard[-1], Finished)


def drive(steps: Generator[Any, Any, Receipt], reply: Any) -> tuple[list[Any], Receipt]:
    seen = [next(steps)]
    try:
        while True:
            seen.append(steps.send(reply(seen[-1])))
    except StopIteration as done:
        return seen, done.value


def test_a_background_audit_is_left_to_the_call_path_with_the_finished_receipt() -> None:
    later: list[Deferred] = []
    face = Face(two(mode="background", key="total"), CallInfo(on_audit=later.append))

    value, receipt = face.finish(answered)  # no audit step: the walk ends with the answer

    assert value == Invoice(total=12.5)
    assert receipt.audit is None and len(receipt.attempts) == 1
    (deferred,) = later
    assert deferred.receipt is receipt
    heard: list[Any] = []
    seen, amended = drive(
        deferred.steps(heard.append), lambda step: answered(step, Invoice(total=12.5))
    )

    assert [names(step) for step in seen] == ["strong-1"]
    assert amended.id == receipt.id and amended.attempts[0] == receipt.attempts[0]
    assert amended.attempts[1].purpose == "audit"
    assert amended.audit is not None
    assert (amended.audit.mode, amended.audit.agreed) == ("background", True)
    assert amended.moves == () and amended.answered_by == "cheap"
    assert [type(e).__name__ for e in heard] == ["AttemptFinished", "Audited"]


def test_without_a_taker_a_background_audit_is_not_run() -> None:
    face = Face(two(mode="background"))

    _, receipt = face.finish(answered)

    assert receipt.audit is None


def test_a_retry_step_of_the_answer_comes_before_the_audit() -> None:
    face = Face(two())

    assert isinstance(face.reply(provider_failure), Sleep)
    assert names(face.reply(None)) == "cheap-1"
    assert names(face.reply(answered)) == "strong-1"
    _, receipt = face.finish(answered)

    assert [a.purpose for a in receipt.attempts] == ["answer", "retry", "audit"]


def test_an_audit_that_would_pass_the_budget_is_not_made() -> None:
    from decimal import Decimal

    from .test_engine import Deployment, FakeTier

    priced = FakeTier("strong", (Deployment("strong-1", usd_per_token=Decimal("0.01")),))
    the_plan = audited_plan(make_tier("cheap"), priced)
    face = Face(the_plan, CallInfo(budget_usd=Decimal("0.5")))

    _, receipt = face.finish(answered)  # 120 tokens at $0.01 would pass $0.50: no audit

    assert receipt.audit is None and [a.purpose for a in receipt.attempts] == ["answer"]
    assert receipt.notes[-1].startswith("audit: not made: spent $0.001000 + projected $1.2")
