"""cites and known_ids, directly."""

from __future__ import annotations

import pytest

from escalate import ConfigurationError
from escalate.gates import cites, known_ids
from tests._gates_helpers import answer, passes, reason_of

# --- cites --------------------------------------------------------------------------------


def test_cites_counts_distinct_pattern_matches_using_the_first_group() -> None:
    gate = cites("summary", pattern=r"\[(\d+)\]", min_count=2)
    assert passes(gate, answer())
    assert gate.references(answer(summary="[1] and [1] and [3]")) == ["1", "3"]
    assert reason_of(gate, answer(summary="Paid [1], see [1].")) == (
        r"summary cites 1 distinct reference(s) matching the pattern \[(\d+)\]; needs at least 2"
    )


def test_cites_without_groups_uses_the_whole_match() -> None:
    gate = cites("summary", pattern=r"doc-\d+")
    assert gate.references(answer(summary="see doc-1 and doc-22")) == ["doc-1", "doc-22"]


def test_cites_names_the_ids_not_allowed() -> None:
    gate = cites("summary", pattern=r"\[(\d+)\]", allowed={"1", "2"})
    assert passes(gate, answer())
    assert reason_of(gate, answer(summary="As [1], [7] and [9] say.")) == (
        "summary cites 2 id(s) not allowed: '7', '9'"
    )


def test_cites_on_a_list_field_takes_its_values_as_references() -> None:
    gate = cites("sources.id", allowed=["doc-1", "doc-2"], min_count=2)
    assert passes(gate, answer())
    bad = answer(sources=[{"id": "doc-1", "quote": "q"}, {"id": "doc-9", "quote": "q"}])
    assert reason_of(gate, bad) == "sources.id cites 1 id(s) not allowed: 'doc-9'"
    assert reason_of(cites("tags"), answer(tags=["  "])) == (
        "tags cites 0 distinct reference(s); needs at least 1"
    )


def test_cites_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="not a regex"):
        cites("summary", pattern="[unclosed")
    with pytest.raises(ConfigurationError, match="allowed must be a collection"):
        cites("summary", allowed="doc-1")
    with pytest.raises(ConfigurationError, match="min_count must be an int >= 0"):
        cites("summary", min_count=-1)


# --- known_ids ----------------------------------------------------------------------------


def test_known_ids_against_a_set_a_list_and_a_mapping() -> None:
    for known in ({"C-7", "C-8"}, ["C-7", "C-8"], {"C-7": "ACME"}):
        gate = known_ids("customer.id", known)
        assert passes(gate, answer())
        assert reason_of(gate, answer(customer={"id": "C-99", "name": "x"})) == (
            "unknown id(s) at customer.id: 'C-99'"
        )


def test_known_ids_with_a_lookup_function() -> None:
    seen: list[str] = []

    def exists(ident: str) -> bool:
        seen.append(ident)
        return ident.startswith("doc-") and ident != "doc-2"

    gate = known_ids("sources.id", exists)
    assert reason_of(gate, answer()) == "unknown id(s) at sources.id: 'doc-2'"
    assert seen == ["doc-1", "doc-2"]


def test_known_ids_lists_at_most_five_unknown_ids() -> None:
    tags = [f"t{i}" for i in range(8)] + ["known", "t0"]
    assert reason_of(known_ids("tags", {"known"}), answer(tags=tags)) == (
        "unknown id(s) at tags: 't0', 't1', 't2', 't3', 't4' and 3 more"
    )


def test_known_ids_skips_a_missing_optional_value() -> None:
    assert passes(known_ids("customer.id", set()), answer(customer=None))


def test_known_ids_refuses_a_string_for_the_known_ids() -> None:
    with pytest.raises(ConfigurationError, match="known must be a collection of ids"):
        known_ids("customer.id", "C-7")
