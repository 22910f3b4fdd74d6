"""Field paths, shared by the field gates: missing fields named with the fields the
answer has, lists walked, malformed paths and response-model typos refused up front."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from escalate import ConfigurationError
from escalate.gates import (
    cites,
    known_ids,
    min_length,
    not_empty,
    not_hedging,
    not_refusal,
    self_reported,
)
from tests._gates_helpers import Answer, answer, passes, reason_of

# --- field paths --------------------------------------------------------------------------


def test_a_missing_field_names_it_and_the_fields_the_answer_has() -> None:
    assert reason_of(min_length("sumary", 1), answer()) == (
        "the answer has no field 'sumary' (the answer has fields: "
        "summary, tags, sources, customer, confidence, total)"
    )


def test_a_missing_nested_field_names_the_fields_of_its_parent() -> None:
    assert reason_of(known_ids("customer.ident", {"C-7"}), answer()) == (
        "the answer has no field 'customer.ident' (customer has fields: id, name)"
    )
    assert reason_of(not_empty("sources.url"), answer()) == (
        "the answer has no field 'sources.url' (sources[0] has fields: id, quote)"
    )


def test_a_path_through_text_is_named() -> None:
    assert reason_of(min_length("summary.text", 1), answer()) == (
        "the answer has no field 'summary.text': summary is a str, not a model with field 'text'"
    )


def test_paths_walk_lists_and_reasons_name_the_element() -> None:
    gate = min_length("sources.quote", 5)
    assert reason_of(gate, answer()) == "sources[1].quote is 4 chars; needs at least 5 chars"
    assert passes(gate, answer(sources=[{"id": "d", "quote": "long enough"}]))


def test_dict_answers_work_like_models() -> None:
    assert passes(min_length("a.b", 2), {"a": {"b": "xy"}})
    assert reason_of(min_length("a.c", 2), {"a": {"b": "xy"}}) == (
        "the answer has no field 'a.c' (a has fields: b)"
    )


@pytest.mark.parametrize("bad", ["", "a..b", "a.1", " summary"])
def test_a_malformed_path_is_a_configuration_error(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="dotted path"):
        min_length(bad, 1)


def test_check_response_model_finds_typos_before_any_answer() -> None:
    for gate in (
        min_length("summary", 1),
        cites("sources.id", allowed={"doc-1"}),
        known_ids("customer.id", {"C-7"}),
        not_refusal("sources.quote"),
        not_empty("tags"),
        self_reported(),
    ):
        gate.check_response_model(Answer)
    not_hedging().check_response_model(Answer)  # no field: nothing to check
    with pytest.raises(ConfigurationError) as caught:
        known_ids("customer.ident", {"C-7"}).check_response_model(Answer)
    assert str(caught.value) == (
        "known_ids(customer.ident): the response model has no field 'customer.ident' "
        "(customer has fields: id, name)"
    )
    with pytest.raises(ConfigurationError, match=r"'sources\.url'.*sources has fields: id, quote"):
        not_empty("sources.url").check_response_model(Answer)

    class Loose(BaseModel):
        extra: dict[str, Any]

    min_length("extra.anything", 1).check_response_model(Loose)  # a dict may hold it
