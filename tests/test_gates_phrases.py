"""not_refusal and not_hedging, directly."""

from __future__ import annotations

import pytest

from escalate import ConfigurationError
from escalate.gates import DEFAULT_HEDGES, DEFAULT_REFUSALS, not_hedging, not_refusal
from tests._gates_helpers import answer, passes, reason_of

# --- refusals and hedges ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I cannot help with that.",
        "Sorry, I CAN'T do this",
        "I can\u2019t access the document",  # a typographic apostrophe
        "I'm unable to read it.",
        "As an AI, I have no opinion.",
    ],
)
def test_not_refusal_catches_refusals(text: str) -> None:
    reason = reason_of(not_refusal("summary"), answer(summary=text))
    assert reason.startswith("refusal: summary says ")


def test_not_refusal_reason_quotes_the_phrase_and_field() -> None:
    assert reason_of(not_refusal(), answer(tags=["ok", "i cannot say"])) == (
        "refusal: tags[1] says 'i cannot'"
    )


def test_not_refusal_without_a_field_reads_every_text_field_nested_ones_too() -> None:
    refusing = answer(sources=[{"id": "d", "quote": "As an AI model I decline"}])
    assert reason_of(not_refusal(), refusing) == "refusal: sources[0].quote says 'As an AI'"
    assert passes(not_refusal(), answer())
    assert passes(not_refusal("summary"), refusing)  # only the field named


def test_not_hedging_matches_whole_words_only() -> None:
    gate = not_hedging("summary")
    assert passes(gate, answer(summary="That is impossibly precise; the mighty bear."))
    assert reason_of(gate, answer(summary="It is possibly due in May.")) == (
        "hedging: summary says 'possibly'"
    )
    assert reason_of(gate, answer(summary="I think it might be May")) == (
        "hedging: summary says 'I think'"
    )


def test_user_phrases_replace_the_defaults() -> None:
    gate = not_hedging(phrases=["TBD"])
    assert passes(gate, answer(summary="I think so"))
    assert reason_of(gate, answer(summary="due: tbd")) == "hedging: summary says 'tbd'"
    extended = not_refusal(phrases=[*DEFAULT_REFUSALS, "no comment"])
    assert reason_of(extended, answer(summary="No comment.")) == (
        "refusal: summary says 'No comment'"
    )


def test_default_phrase_lists_hold_what_the_docs_promise() -> None:
    for phrase in ("I cannot", "I can't", "I'm unable", "as an AI"):
        assert phrase in DEFAULT_REFUSALS
    for phrase in ("I'm not sure", "might be", "possibly", "I think"):
        assert phrase in DEFAULT_HEDGES


def test_phrase_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="not one string"):
        not_refusal(phrases="sorry")
    with pytest.raises(ConfigurationError, match="non-empty strings"):
        not_hedging(phrases=[])
    with pytest.raises(ConfigurationError, match="non-empty strings"):
        not_hedging(phrases=["ok", " "])
