"""min_length, max_length and not_empty, directly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from escalate import ConfigurationError
from escalate.gates import max_length, min_length, not_empty
from tests._gates_helpers import answer, passes, reason_of

# --- lengths ------------------------------------------------------------------------------


def test_min_length_in_chars_ignores_surrounding_whitespace() -> None:
    gate = min_length("summary", 5)
    assert passes(gate, answer(summary="hello"))
    assert reason_of(gate, answer(summary="  hi   ")) == (
        "summary is 2 chars; needs at least 5 chars"
    )


def test_min_and_max_length_in_words() -> None:
    assert passes(min_length("summary", 3, unit="words"), answer(summary="one two three"))
    assert reason_of(min_length("summary", 4, unit="words"), answer(summary="one two  three")) == (
        "summary is 3 words; needs at least 4 words"
    )
    assert reason_of(max_length("summary", 2, unit="words"), answer(summary="a b c")) == (
        "summary is 3 words; needs at most 2 words"
    )


def test_length_of_a_list_of_strings_checks_each_element() -> None:
    gate = max_length("tags", 4)
    assert reason_of(gate, answer(tags=["ok", "billing", "paid", "overdue"])) == (
        "tags[1] is 7 chars, tags[3] is 7 chars; needs at most 4 chars"
    )
    assert passes(gate, answer(tags=[]))  # vacuous: not_empty says "there must be some"


def test_length_of_a_list_of_models_checks_their_text_fields() -> None:
    assert reason_of(min_length("sources", 5), answer()) == (
        "sources[1].quote is 4 chars; needs at least 5 chars"
    )
    assert reason_of(max_length("sources", 4), answer()) == (
        "sources[0].id is 5 chars, sources[0].quote is 9 chars, sources[1].id is 5 chars; "
        "needs at most 4 chars"
    )


def test_min_length_of_a_missing_value_rejects_and_max_length_passes() -> None:
    assert reason_of(min_length("customer.name", 1), answer(customer=None)) == (
        "customer is 0 chars; needs at least 1 chars"
    )
    assert passes(max_length("customer.name", 1), answer(customer=None))


def test_length_of_a_number_is_a_rejection_saying_so() -> None:
    assert reason_of(min_length("total", 1), answer()) == (
        "total holds a float, not text (a str, a list of str, or models with str fields)"
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: min_length("summary", -1), "n must be an int >= 0"),
        (
            lambda: max_length("summary", 2.5),  # type: ignore[arg-type]
            "n must be an int >= 0",
        ),
        (
            lambda: min_length("summary", 3, unit="tokens"),  # type: ignore[arg-type]
            "unit must be 'chars' or 'words'",
        ),
    ],
)
def test_length_configuration_errors(make: Callable[[], Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make()


# --- not_empty ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"summary": ""}, "empty: summary"),
        ({"summary": " \t"}, "empty: summary"),
        ({"tags": []}, "empty: tags (an empty list)"),
        ({"tags": ["a", "  "]}, "empty: tags[1]"),
    ],
)
def test_not_empty_rejects(changes: dict[str, Any], reason: str) -> None:
    field = next(iter(changes))
    assert reason_of(not_empty(field), answer(**changes)) == reason


def test_not_empty_passes_and_rejects_none() -> None:
    assert passes(not_empty("summary"), answer())
    assert passes(not_empty("confidence"), answer(confidence=0.0))
    assert reason_of(not_empty("customer"), answer(customer=None)) == "empty: customer"
