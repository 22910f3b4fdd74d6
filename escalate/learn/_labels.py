"""Labels from receipts: which cheap answers were right, as :class:`Example` s to train on.

Three sources, each example's ``source`` saying which:

- ``feedback``: a user's verdict (:func:`escalate.feedback`) on a call whose returned
  answer came from the labelled tier: ``good`` is the label (the latest verdict counts);
- ``audit``: a stronger tier's second opinion on an answer that passed
  (``receipt.audit``): ``agreed`` is the label of the audited answer;
- ``escalation``: a cheap answer a gate rejected, in a call a stronger tier then
  answered: compared on ``key``, the cheap answer is labelled **wrong** when the stronger
  answer disagrees (the rejection was right) and **right** when it agrees (a false
  rejection: the gate cost an escalation for nothing). Without ``key`` there are no
  escalation labels: two free texts rarely match word for word.

One answer gives one example: feedback before audit before escalation.

**Prompts.** Receipts do not keep prompts (the store keeps none either: only what the
receipt holds), so by default an example's prompt is ``""`` and the gate learns from the
answer's text, shape and scores alone (train such a gate with ``Features(prompt=False)``,
so it ignores the prompt when it scores as well). A caller who can find the prompt again,
say from a tag the call was filed with (``escalate.options(tags={"ticket": id})``),
passes ``prompt_of(receipt) -> str | None``; the learned gate must then read the same
text (``learned_gate(prompt_of=...)``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from escalate._receipt import Attempt, Receipt
from escalate.learn._train import Example

if TYPE_CHECKING:
    from escalate.store import Store

__all__ = ["Key", "cheapest_tier", "example_of", "labels_from_receipts", "labels_from_store"]

Key = str | Callable[[str], Any]
"""What two answers are compared on: a field of the answer's JSON (a dotted path; a
non-model answer's field is ``answer``), or ``key(answer_text) -> value``."""

_ANSWERING = ("answer", "reask")
_PRIORITY = {"feedback": 0, "audit": 1, "escalation": 2}


def cheapest_tier(receipts: Iterable[Receipt]) -> str | None:
    """The tier most receipts started on (calls start on the cheapest unless routed)."""
    starts = Counter(r.attempts[0].tier for r in receipts if r.attempts)
    return starts.most_common(1)[0][0] if starts else None


def _returned(receipt: Receipt) -> tuple[int, Attempt] | None:
    """The attempt whose answer the call returned."""
    if receipt.outcome not in ("answered", "best_effort") or receipt.answered_by is None:
        return None
    for index in range(len(receipt.attempts) - 1, -1, -1):
        attempt = receipt.attempts[index]
        if (
            attempt.tier == receipt.answered_by
            and attempt.purpose in _ANSWERING
            and attempt.outcome in ("answered", "rejected")
        ):
            return index, attempt
    return None


def _key_of(key: Key, text: str | None) -> Any:
    """The answer's key, normalised (numbers by value, strings stripped); None when the
    answer has none."""
    if text is None:
        return None
    if callable(key):
        value = key(text)
    else:
        try:
            value = json.loads(text)
        except ValueError:
            return None
        for name in key.split("."):
            if not isinstance(value, Mapping) or name not in value:
                return None
            value = value[name]
    if isinstance(value, str):
        value = value.strip()
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return ("number", Decimal(str(value).replace(",", "")).normalize())
        except (InvalidOperation, ValueError):
            pass
    if value is None or value == "":
        return None
    return ("value", json.dumps(value, sort_keys=True, default=str))


def example_of(
    receipt: Receipt,
    label: bool,
    *,
    tier: str | None = None,
    prompt: str = "",
    group: str | None = None,
    source: str = "eval",
    skip_scores: Iterable[str] = ("learned",),
) -> Example | None:
    """The :class:`Example` of ``tier``'s first answer in ``receipt`` (default: the first
    tier it tried), labelled ``label`` by the caller (an evaluation set's grade); None when
    that tier gave no answer a gate could judge (a provider failure, a validation error).

    For an evaluation set: call the function on each item, grade the cheap answer, and
    keep ``example_of(receipt_of(result), label=right, prompt=question, group=item.id)``.
    """
    tier = tier if tier is not None else (receipt.attempts[0].tier if receipt.attempts else None)
    skip = set(skip_scores)
    for attempt in receipt.attempts:
        if (
            attempt.tier == tier
            and attempt.purpose in _ANSWERING
            and attempt.raw_output is not None
            and (attempt.outcome == "answered" or attempt.trigger == "gate")
        ):
            scores = {k: v for k, v in attempt.scores.items() if k not in skip}
            return Example(prompt, attempt.raw_output, bool(label), scores, group, source)
    return None


def labels_from_receipts(
    receipts: Iterable[Receipt],
    *,
    tier: str | None = None,
    key: Key | None = None,
    feedback: Mapping[str, bool] | None = None,
    prompt_of: Callable[[Receipt], str | None] | None = None,
    group_of: Callable[[Receipt], str | None] | None = None,
    skip_scores: Iterable[str] = ("learned",),
) -> list[Example]:
    """The labelled answers of ``tier`` (default: :func:`cheapest_tier`) in ``receipts``
    (see the module docstring for the rules).

    ``feedback`` maps a receipt id to its verdict (``good``; :func:`labels_from_store`
    reads them from the store). Each example's scores are its attempt's, less
    ``skip_scores`` (a learned gate's own score, which would teach the next model to copy
    the last one). Its group is ``group_of(receipt)``, else its prompt when known, else
    the receipt's id: the answers of one call stay on one side of a split.
    """
    receipts = list(receipts)
    tier = tier if tier is not None else cheapest_tier(receipts)
    verdicts = dict(feedback or {})
    skip = set(skip_scores)
    found: dict[tuple[int, int], Example] = {}

    def add(
        position: int, receipt: Receipt, index: int, attempt: Attempt, label: bool, source: str
    ) -> None:
        if attempt.raw_output is None:
            return
        here = (position, index)
        kept = found.get(here)
        if kept is not None and _PRIORITY[kept.source] <= _PRIORITY[source]:
            return
        prompt = (prompt_of(receipt) if prompt_of is not None else None) or ""
        group = group_of(receipt) if group_of is not None else None
        if group is None and not prompt:
            group = receipt.id
        scores = {k: v for k, v in attempt.scores.items() if k not in skip}
        found[here] = Example(prompt, attempt.raw_output, label, scores, group, source)

    for position, receipt in enumerate(receipts):
        returned = _returned(receipt)
        if returned is not None and returned[1].tier == tier:
            index, attempt = returned
            if receipt.id in verdicts:
                add(position, receipt, index, attempt, bool(verdicts[receipt.id]), "feedback")
            audit = receipt.audit
            if audit is not None and audit.agreed is not None and audit.of_tier == tier:
                add(position, receipt, index, attempt, audit.agreed, "audit")
        if key is None or returned is None or receipt.outcome != "answered":
            continue
        strong_index, strong = returned
        if strong.tier == tier:
            continue
        strong_key = _key_of(key, strong.raw_output)
        if strong_key is None:
            continue
        for index, attempt in enumerate(receipt.attempts[:strong_index]):
            if (
                attempt.tier == tier
                and attempt.purpose in _ANSWERING
                and attempt.outcome == "rejected"
                and attempt.trigger == "gate"
            ):
                cheap_key = _key_of(key, attempt.raw_output)
                if cheap_key is not None:
                    add(position, receipt, index, attempt, cheap_key == strong_key, "escalation")
    return [found[k] for k in sorted(found)]


def labels_from_store(
    store: Store | str | os.PathLike[str],
    *,
    function: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    tier: str | None = None,
    key: Key | None = None,
    prompt_of: Callable[[Receipt], str | None] | None = None,
    group_of: Callable[[Receipt], str | None] | None = None,
    skip_scores: Iterable[str] = ("learned",),
) -> list[Example]:
    """:func:`labels_from_receipts` over the stored receipts of ``function`` (its
    ``module.qualname`` or last part, as reports match it) started in ``[since, until)``,
    joined with the feedback verdicts stored for them (the latest verdict of a call
    counts). Needs the ``store`` extra."""
    from sqlalchemy import select

    import escalate.store._schema as s
    from escalate.store._query import Filters
    from escalate.store._store import Store

    if isinstance(store, Store):
        opened = store
    else:
        opened = Store(store if isinstance(store, str) else Path(os.fspath(store)))
    where = Filters(since=since, until=until, function=function).where()
    receipts_query = (
        select(s.calls.c.receipt).where(where).order_by(s.calls.c.started_at, s.calls.c.id)
    )
    verdicts_query = (
        select(s.feedback.c.call_id, s.feedback.c.good)
        .where(s.feedback.c.call_id.in_(select(s.calls.c.id).where(where)))
        .order_by(s.feedback.c.created_at, s.feedback.c.id)
    )
    try:
        with opened.engine.connect() as connection:
            rows = connection.execute(receipts_query)
            receipts = [Receipt.from_json(data) for (data,) in rows]
            rows = connection.execute(verdicts_query)
            verdicts = {row.call_id: bool(row.good) for row in rows}
    finally:
        if opened is not store:
            opened.close()
    return labels_from_receipts(
        receipts,
        tier=tier,
        key=key,
        feedback=verdicts,
        prompt_of=prompt_of,
        group_of=group_of,
        skip_scores=skip_scores,
    )
