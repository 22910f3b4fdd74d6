"""Labels from receipts made through the real SDK path (the openai SDK and instructor
against the local provider server): users' feedback, audits and escalations, each by its
rule; and from a real store, SQLite and PostgreSQL, feedback joined."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Literal

import pytest

import escalate
import escalate.store
from escalate import Receipt, receipt_of
from escalate._receipt import AuditVerdict
from escalate.learn import cheapest_tier, example_of, labels_from_receipts, labels_from_store
from escalate.store import Store
from escalate.testing._server import ProviderServer

from .conftest import cheap_answer, is_right, is_short, make_solver, question

pytestmark = pytest.mark.usefixtures("served")


def _receipts(served: ProviderServer, numbers: range) -> list[Receipt]:
    solve = make_solver(served)
    return [receipt_of(solve(question(i))) for i in numbers]


def _audited(receipt: Receipt, agreed: bool) -> Receipt:
    """The receipt as an audit of its returned answer leaves it (``escalating(audit=...)``
    is built elsewhere; this is the field it fills)."""
    audit = AuditVerdict(
        tier="strong", of_tier="cheap", gates=("length",), key="value", agreed=agreed
    )
    return receipt.model_copy(update={"audit": audit})


def test_escalations_label_the_rejected_cheap_answer_by_the_strong_one(
    served: ProviderServer,
) -> None:
    receipts = _receipts(served, range(1, 31))
    examples = labels_from_receipts(receipts, key="value")
    escalated = [r for r in receipts if r.escalated]
    assert len(escalated) == 6 and all(r.answered_by == "strong" for r in escalated)
    assert [e.source for e in examples] == ["escalation"] * 6
    # The strong tier always answers the question's number: the cheap answer agreed with
    # it (a false rejection of the length gate: labelled right) exactly when it was right.
    numbers = [i for i in range(1, 31) if is_short(i)]
    assert [e.label for e in examples] == [is_right(i) for i in numbers]
    assert examples[0].answer == receipts[4].attempts[0].raw_output
    assert json.loads(examples[0].answer) == cheap_answer(5)
    assert examples[0].scores == {"length": 0.2}
    assert examples[0].prompt == "" and examples[0].group == receipts[4].id
    assert labels_from_receipts(receipts) == []  # no key, no escalation labels


def test_audits_label_the_audited_answer(served: ProviderServer) -> None:
    receipts = _receipts(served, range(1, 5))  # all answered by the cheap tier
    assert [r.answered_by for r in receipts] == ["cheap"] * 4
    audited = [_audited(receipts[0], True), _audited(receipts[2], False), receipts[1]]
    examples = labels_from_receipts(audited, key="value")
    assert [(e.source, e.label) for e in examples] == [("audit", True), ("audit", False)]
    assert examples[1].answer == receipts[2].attempts[0].raw_output
    no_verdict = receipts[3].model_copy(
        update={"audit": AuditVerdict(tier="strong", of_tier="cheap", agreed=None)}
    )
    assert labels_from_receipts([no_verdict]) == []  # the audit got no answer


def test_feedback_labels_the_answer_it_judged(served: ProviderServer) -> None:
    receipts = _receipts(served, range(1, 6))  # question 5 escalates to the strong tier
    verdicts = {r.id: False for r in receipts}
    examples = labels_from_receipts(receipts, key="value", feedback=verdicts)
    # Feedback on the strong tier's answer says nothing of the cheap one: question 5 gives
    # its escalation label only.
    assert [(e.source, e.label) for e in examples] == [("feedback", False)] * 4 + [
        ("escalation", True)
    ]
    # One answer, one example: feedback comes before an audit.
    both = labels_from_receipts([_audited(receipts[0], True)], feedback={receipts[0].id: False})
    assert [(e.source, e.label) for e in both] == [("feedback", False)]


def test_the_labelled_tier_and_the_prompt(served: ProviderServer) -> None:
    solve = make_solver(served)
    receipts = []
    for i in range(1, 16):
        with escalate.options(tags={"question": question(i)}):
            receipts.append(receipt_of(solve(question(i))))
    assert cheapest_tier(receipts) == "cheap"
    examples = labels_from_receipts(
        receipts,
        key="value",
        prompt_of=lambda r: r.tags.get("question"),
        skip_scores=("length",),
    )
    assert [e.prompt for e in examples] == [question(5), question(10), question(15)]
    assert all(e.group is None and e.scores == {} for e in examples)  # grouped by prompt
    assert labels_from_receipts(receipts, tier="strong", key="value") == []
    # The key decides what agreeing means: on the tens digit alone, question 15's wrong 16
    # agrees with the strong tier's 15.
    assert [e.label for e in examples] == [True, True, False]
    coarse = labels_from_receipts(receipts, key=lambda text: json.loads(text)["value"] // 10)
    assert [e.label for e in coarse] == [True, True, True]
    assert coarse[2].answer == receipts[14].attempts[0].raw_output


def test_labels_from_a_store_join_the_feedback(
    served: ProviderServer, store_url: str, use_store: Callable[..., None]
) -> None:
    solve = make_solver(served)
    other = make_solver(served, name="other")
    use_store(store_url)
    results = [solve(question(i)) for i in range(1, 11)]
    receipt_of(other(question(5)))  # another function's escalation: not read
    for i, result in enumerate(results, 1):
        if not is_short(i):
            escalate.feedback(result, good=is_right(i))
    escalate.feedback(results[0], good=False)
    escalate.feedback(results[0], good=True)  # the latest verdict counts
    assert escalate.flush()
    examples = labels_from_store(store_url, function="solve", key="value")
    sources = [e.source for e in examples]
    assert sources.count("feedback") == 8 and sources.count("escalation") == 2
    assert [e.label for e in examples] == [is_right(i) for i in range(1, 11)]
    first = receipt_of(results[0])
    assert examples[0].answer == first.attempts[0].raw_output
    later = labels_from_store(
        Store(store_url),
        function="solve",
        key="value",
        since=first.started_at + timedelta(microseconds=1),
    )
    assert len(later) == 9


def test_an_evaluation_set_labels_the_cheap_answer(served: ProviderServer) -> None:
    receipts = _receipts(served, range(4, 6))  # 4 answered cheap; 5 rejected, escalated
    kept = example_of(receipts[0], True, prompt=question(4), group="item-4")
    assert kept is not None and kept.source == "eval" and kept.group == "item-4"
    assert kept.answer == receipts[0].attempts[0].raw_output and kept.scores == {"length": 1.0}
    rejected = example_of(receipts[1], False)
    assert rejected is not None and json.loads(rejected.answer) == cheap_answer(5)
    assert example_of(receipts[1], True, tier="strong") is not None
    assert example_of(receipts[0], True, tier="strong") is None


@pytest.mark.parametrize("mode", ["inline", "background"])
def test_real_audits_in_a_store_become_labels(
    served: ProviderServer,
    store_url: str,
    use_store: Callable[..., None],
    mode: Literal["inline", "background"],
) -> None:
    # Every answer that passes is audited by the strong tier, which answers the question's
    # number: the audit agrees exactly when the cheap answer was right.
    audit = escalate.Audit(share=1.0, key="value", mode=mode)
    solve = make_solver(served, name="audited", audit=audit)
    use_store(store_url)
    numbers = [i for i in range(1, 13) if not is_short(i)]
    for i in numbers:
        solve(question(i))
    assert escalate.audits_flush()
    assert escalate.flush()
    examples = labels_from_store(store_url, function="audited")
    assert [e.source for e in examples] == ["audit"] * len(numbers)
    assert [e.label for e in examples] == [is_right(i) for i in numbers]
    assert [json.loads(e.answer) for e in examples] == [cheap_answer(i) for i in numbers]
    stored = escalate.store.audit_labels(Store(store_url), function="audited")
    assert sorted(label.agreed for label in stored) == sorted(is_right(i) for i in numbers)
