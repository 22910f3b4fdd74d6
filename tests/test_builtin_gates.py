"""The built-in gates: directly (every gate passing and rejecting, its reason and score, bad
field names, list fields) and end to end through the real SDKs and instructor over the local
provider server, through the sync and the async face."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import anthropic.types
import instructor
import openai.types.chat
import pytest
from pydantic import BaseModel

from escalate import ConfigurationError, Tier, escalating, receipt_of
from escalate.gates import (
    DEFAULT_HEDGES,
    DEFAULT_REFUSALS,
    GateContext,
    Rejected,
    cites,
    complete,
    known_ids,
    logprob_confidence,
    max_length,
    min_length,
    not_empty,
    not_hedging,
    not_refusal,
    self_reported,
)
from escalate.testing._server import ProviderServer, Reply

# --- answers and contexts -----------------------------------------------------------------


class Customer(BaseModel):
    id: str
    name: str


class Source(BaseModel):
    id: str
    quote: str


class Answer(BaseModel):
    summary: str
    tags: list[str] = []
    sources: list[Source] = []
    customer: Customer | None = None
    confidence: float | None = None
    total: float = 0.0


def answer(**changes: Any) -> Answer:
    data: dict[str, Any] = {
        "summary": "The invoice is due on 3 May [1] and was paid in full [2].",
        "tags": ["billing", "paid"],
        "sources": [{"id": "doc-1", "quote": "due 3 May"}, {"id": "doc-2", "quote": "paid"}],
        "customer": {"id": "C-7", "name": "ACME"},
        "confidence": 0.9,
    }
    return Answer.model_validate({**data, **changes})


def openai_completion(
    logprobs: list[float] | None = None, finish_reason: str = "stop"
) -> openai.types.chat.ChatCompletion:
    """A real SDK completion object, as instructor hands it to the engine."""
    content: list[dict[str, Any]] | None = None
    if logprobs is not None:
        content = [
            {"token": f"t{i}", "logprob": lp, "bytes": None, "top_logprobs": []}
            for i, lp in enumerate(logprobs)
        ]
    return openai.types.chat.ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": finish_reason,
                    "message": {"role": "assistant", "content": "{}"},
                    "logprobs": None if content is None else {"content": content},
                }
            ],
        }
    )


def anthropic_message(stop_reason: str) -> anthropic.types.Message:
    return anthropic.types.Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-haiku-4-5",
            "content": [{"type": "text", "text": "{}"}],
            "stop_reason": stop_reason,
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
    )


def ctx(completion: Any = None) -> GateContext:
    return GateContext(
        messages=[{"role": "user", "content": "x"}],
        tier="cheap",
        deployment="cheap",
        provider="openai",
        model="gpt-4o-mini",
        completion=completion,
        attempt=None,
    )


def passes(gate: Callable[..., Any], value: Any, context: GateContext | None = None) -> bool:
    """Whether the gate passes ``value`` without a score."""
    result: object = gate(value, context or ctx())
    return result is None


def reason_of(gate: Callable[..., Any], value: Any, context: GateContext | None = None) -> str:
    with pytest.raises(Rejected) as caught:
        gate(value, context or ctx())
    return caught.value.reason


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


# --- complete and not_empty ---------------------------------------------------------------


def test_complete_rejects_cut_off_completions_of_either_provider() -> None:
    gate = complete()
    assert passes(gate, answer(), ctx(openai_completion()))
    assert passes(gate, answer(), ctx(anthropic_message("end_turn")))
    assert reason_of(gate, answer(), ctx(openai_completion(finish_reason="length"))) == (
        "the output was cut off at the token limit (finish_reason is 'length')"
    )
    assert reason_of(gate, answer(), ctx(anthropic_message("max_tokens"))) == (
        "the output was cut off at the token limit (stop_reason is 'max_tokens')"
    )


def test_complete_rejects_an_answer_whose_text_fields_are_all_blank() -> None:
    blank = answer(summary=" ", tags=[""], sources=[], customer={"id": "", "name": "\n"})
    assert reason_of(complete(), blank) == (
        "every text field is empty (summary, tags[0], customer.id, customer.name)"
    )
    assert passes(complete(), answer(summary=" ", tags=["x"]))

    class Numbers(BaseModel):
        n: int

    assert passes(complete(), Numbers(n=0))  # no text to be empty


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


# --- logprob_confidence -------------------------------------------------------------------

LOGPROBS = [math.log(p) for p in (0.99, 0.98, 0.97, 0.6, 0.95, 0.3, 0.99, 0.99, 0.9, 0.99)]


def test_logprob_confidence_statistics() -> None:
    probabilities = sorted(math.exp(lp) for lp in LOGPROBS)
    completion = ctx(openai_completion(LOGPROBS))
    mean = logprob_confidence(0.5, statistic="mean")(answer(), completion)
    assert mean == pytest.approx(sum(probabilities) / 10)
    assert logprob_confidence(0.2, statistic="min")(answer(), completion) == pytest.approx(0.3)
    # p10 of 10 values: 0.9 of the way from the smallest (0.3) to the next (0.6).
    p10 = logprob_confidence(0.2)(answer(), completion)
    assert p10 == pytest.approx(0.3 + 0.9 * (0.6 - 0.3))
    p50 = logprob_confidence(0.2, quantile=0.5)(answer(), completion)
    assert p50 == pytest.approx((0.97 + 0.98) / 2)


def test_logprob_confidence_rejects_below_threshold_with_its_score() -> None:
    gate = logprob_confidence(0.8)
    with pytest.raises(Rejected) as caught:
        gate(answer(), ctx(openai_completion(LOGPROBS)))
    assert caught.value.reason == "confidence 0.57 (p10 of 10 tokens) < 0.80"
    assert caught.value.score == pytest.approx(0.57)
    assert (
        reason_of(
            logprob_confidence(0.8, statistic="mean"),
            answer(),
            ctx(openai_completion([math.log(0.5)] * 4)),
        )
        == "confidence 0.50 (mean of 4 tokens) < 0.80"
    )


def test_the_mean_hides_a_guess_that_the_quantile_catches() -> None:
    # 57 tokens: confident JSON boilerplate around seven guessed ones.
    logprobs = [math.log(0.999)] * 50 + [math.log(0.35)] * 7
    completion = ctx(openai_completion(logprobs))
    assert logprob_confidence(0.8, statistic="mean")(answer(), completion) > 0.9
    assert reason_of(logprob_confidence(0.8), answer(), completion) == (
        "confidence 0.35 (p10 of 57 tokens) < 0.80"
    )


@pytest.mark.parametrize(
    "completion",
    [None, openai_completion(None), openai_completion([]), anthropic_message("end_turn")],
)
def test_logprob_confidence_without_logprobs_rejects_saying_why(completion: Any) -> None:
    assert reason_of(logprob_confidence(0.5), answer(), ctx(completion)).startswith(
        "the completion carries no logprobs"
    )


def test_logprob_confidence_asks_for_logprobs_and_refuses_tiers_without_them() -> None:
    gate = logprob_confidence(0.8)
    assert dict(gate.request_kwargs) == {"logprobs": True}
    json_schema = instructor.Mode.JSON_SCHEMA
    gate.check_tier(Tier("openai/gpt-4o-mini", mode=json_schema))
    gate.check_tier(Tier("openai/gpt-4o-mini", mode=instructor.Mode.JSON))
    gate.check_tier(Tier("compatible/llama3", base_url="http://x", mode=instructor.Mode.MD_JSON))
    with pytest.raises(ConfigurationError, match="Anthropic's API returns no logprobs"):
        gate.check_tier(Tier("anthropic/claude-haiku-4-5"))
    with pytest.raises(ConfigurationError) as caught:
        gate.check_tier(Tier("openai/gpt-4o-mini"))
    assert "OpenAI returns no logprobs for tool-call arguments: use Tier(..., " in str(caught.value)
    assert "mode=instructor.Mode.JSON_SCHEMA)" in str(caught.value)
    with pytest.raises(ConfigurationError, match="Anthropic"):  # a fallback counts too
        gate.check_tier(
            Tier("openai/gpt-4o-mini", mode=json_schema, fallbacks=["anthropic/claude-haiku-4-5"])
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 1.5}, "threshold is a probability"),
        ({"threshold": "0.8"}, "threshold must be a number"),
        ({"threshold": 0.5, "statistic": "median"}, "statistic must be"),
        ({"threshold": 0.5, "quantile": 2}, "quantile is a probability in"),
    ],
)
def test_logprob_confidence_configuration_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        logprob_confidence(**kwargs)


# --- self_reported ------------------------------------------------------------------------


def test_self_reported_scores_and_rejects() -> None:
    gate = self_reported()
    assert gate(answer(confidence=0.9), ctx()) == 0.9
    assert gate(answer(confidence=1), ctx()) == 1.0
    assert gate(answer(confidence=85), ctx()) == pytest.approx(0.85)  # a percentage
    with pytest.raises(Rejected) as caught:
        gate(answer(confidence=55), ctx())
    assert caught.value.reason == "self-reported confidence 0.55 < 0.70"
    assert caught.value.score == pytest.approx(0.55)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "confidence is missing (None), not a confidence number"),
        (-0.1, "confidence is -0.1: a confidence is 0..1 (or 0..100)"),
        (250, "confidence is 250.0: a confidence is 0..1 (or 0..100)"),
    ],
)
def test_self_reported_rejects_what_is_no_confidence(value: Any, reason: str) -> None:
    assert reason_of(self_reported(), answer(confidence=value)) == reason


def test_self_reported_reads_another_field_and_refuses_text() -> None:
    assert self_reported("total", threshold=0.1)(answer(total=0.2), ctx()) == 0.2
    assert reason_of(self_reported("summary"), answer()) == (
        "summary is a str, not a confidence number"
    )
    with pytest.raises(ConfigurationError, match="threshold must be in"):
        self_reported(threshold=70)


# --- names and shape ----------------------------------------------------------------------


def test_default_names_and_overrides() -> None:
    assert [
        g.name
        for g in (
            min_length("summary", 1),
            max_length("tags", 1),
            cites("summary"),
            known_ids("customer.id", set()),
            not_refusal(),
            not_hedging("summary"),
            complete(),
            not_empty("tags"),
            logprob_confidence(0.5),
            self_reported(),
        )
    ] == [
        "min_length(summary)",
        "max_length(tags)",
        "cites(summary)",
        "known_ids(customer.id)",
        "not_refusal",
        "not_hedging(summary)",
        "complete",
        "not_empty(tags)",
        "logprob_confidence",
        "self_reported",
    ]
    assert min_length("summary", 1, name="long_enough").name == "long_enough"


def test_gates_are_frozen() -> None:
    gate = min_length("summary", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        gate.n = 5  # type: ignore[misc]
    assert gate == min_length("summary", 1)


# --- end to end ---------------------------------------------------------------------------


class Summary(BaseModel):
    summary: str
    sources: list[str] = []


class Rated(BaseModel):
    summary: str
    confidence: float


STRONG: dict[str, Any] = {"summary": "Paid in full on 3 May, see [1].", "sources": ["doc-1"]}


def cheap_and_strong(openai_tier: Any, **cheap: Any) -> list[Tier]:
    return [openai_tier("gpt-4o-mini", **cheap), openai_tier("gpt-4o")]


E2E_CASES: list[tuple[Any, dict[str, Any], dict[str, Any], str]] = [
    # gate, a cheap answer that passes, one that is rejected, the reason in the receipt
    (
        min_length("summary", 20),
        STRONG,
        {"summary": "Paid."},
        "min_length(summary): summary is 5 chars; needs at least 20 chars",
    ),
    (
        max_length("summary", 8, unit="words"),
        STRONG,
        {"summary": "one two three four five six seven eight nine"},
        "max_length(summary): summary is 9 words; needs at most 8 words",
    ),
    (
        cites("summary", pattern=r"\[(\d+)\]", allowed={"1", "2"}),
        STRONG,
        {"summary": "Paid [4]."},
        "cites(summary): summary cites 1 id(s) not allowed: '4'",
    ),
    (
        known_ids("sources", {"doc-1", "doc-2"}),
        STRONG,
        {"summary": "Paid.", "sources": ["doc-1", "doc-404"]},
        "known_ids(sources): unknown id(s) at sources: 'doc-404'",
    ),
    (
        not_refusal(),
        STRONG,
        {"summary": "I'm sorry, but I cannot read invoices."},
        'not_refusal: refusal: summary says "I\'m sorry, but"',
    ),
    (
        not_hedging("summary"),
        STRONG,
        {"summary": "It might be paid."},
        "not_hedging(summary): hedging: summary says 'might be'",
    ),
    (
        complete(),
        STRONG,
        {"summary": "  ", "sources": []},
        "complete: every text field is empty (summary)",
    ),
    (
        not_empty("sources"),
        STRONG,
        {"summary": "Paid."},
        "not_empty(sources): empty: sources (an empty list)",
    ),
]


def test_a_good_answer_passes_every_built_in_gate_end_to_end(
    build: Any, server: ProviderServer, openai_tier: Any
) -> None:
    gates = [case[0] for case in E2E_CASES]
    extract = build(tiers=cheap_and_strong(openai_tier), response_model=Summary, gates=gates)
    server.script("gpt-4o-mini", Reply(data=STRONG))

    receipt = receipt_of(extract("doc"))

    assert receipt.answered_by == "openai/gpt-4o-mini" and not receipt.escalated
    assert receipt.attempts[0].scores == {}  # mechanical gates keep no score
    assert server.requests_for("gpt-4o") == []


@pytest.mark.parametrize(
    ("gate", "good", "bad", "reason"), E2E_CASES, ids=[c[0].name for c in E2E_CASES]
)
def test_each_gate_rejects_and_escalates_end_to_end(
    build: Any,
    server: ProviderServer,
    openai_tier: Any,
    gate: Any,
    good: dict[str, Any],
    bad: dict[str, Any],
    reason: str,
) -> None:
    extract = build(tiers=cheap_and_strong(openai_tier), response_model=Summary, gates=[gate])
    server.script("gpt-4o-mini", Reply(data=bad))
    server.script("gpt-4o", Reply(data=STRONG))

    result = extract("doc")

    assert result == Summary(**STRONG)
    receipt = receipt_of(result)
    cheap, strong = receipt.attempts
    assert (cheap.outcome, cheap.trigger, cheap.reason) == ("rejected", "gate", reason)
    assert cheap.raw_output is not None and "summary" in cheap.raw_output
    assert strong.outcome == "answered" and receipt.answered_by == "openai/gpt-4o"
    (move,) = receipt.escalations
    assert (move.trigger, move.reason) == ("gate", reason)


def test_gates_on_anthropic_tiers(build: Any, server: ProviderServer, anthropic_tier: Any) -> None:
    tiers = [anthropic_tier("claude-haiku-4-5"), anthropic_tier("claude-sonnet-4-5")]
    extract = build(tiers=tiers, response_model=Summary, gates=[not_refusal(), complete()])
    server.script("claude-haiku-4-5", Reply(data={"summary": "As an AI I can't say."}))
    server.script("claude-sonnet-4-5", Reply(data=STRONG))
    receipt = receipt_of(extract("doc"))
    assert receipt.attempts[0].reason == "not_refusal: refusal: summary says 'As an AI'"
    assert receipt.answered_by == "anthropic/claude-sonnet-4-5"


def test_logprob_confidence_end_to_end_in_json_schema_mode(
    build: Any, server: ProviderServer, openai_tier: Any
) -> None:
    gate = logprob_confidence(0.8)
    tiers = cheap_and_strong(openai_tier, mode=instructor.Mode.JSON_SCHEMA, gates=[gate])
    extract = build(tiers=tiers, response_model=Summary)

    server.script("gpt-4o-mini", Reply(data=STRONG, logprobs=math.log(0.95)))
    receipt = receipt_of(extract("doc"))
    assert receipt.answered_by == "openai/gpt-4o-mini"
    assert receipt.attempts[0].scores == {"logprob_confidence": pytest.approx(0.95)}
    (request,) = server.requests_for("gpt-4o-mini")
    assert request.body["logprobs"] is True
    assert "tools" not in request.body  # JSON schema mode: the answer is content
    # Only the gated tier asks for logprobs.
    server.script("gpt-4o-mini", Reply(data=STRONG, logprobs=[math.log(0.99)] * 3 + [-2.0]))
    server.script("gpt-4o", Reply(data=STRONG))
    receipt = receipt_of(extract("doc"))
    cheap, strong = receipt.attempts
    assert cheap.outcome == "rejected" and cheap.trigger == "gate"
    assert cheap.reason is not None
    assert cheap.reason.startswith("logprob_confidence: confidence 0.14 (p10 of ")
    assert cheap.reason.endswith(" tokens) < 0.80")
    assert cheap.scores == {"logprob_confidence": pytest.approx(math.exp(-2.0))}
    assert strong.outcome == "answered" and strong.scores == {}
    assert "logprobs" not in server.requests_for("gpt-4o")[-1].body


def test_logprob_confidence_refuses_tiers_at_decoration_time(
    build: Any, openai_tier: Any, anthropic_tier: Any
) -> None:
    gate = logprob_confidence(0.8)
    with pytest.raises(ConfigurationError, match="tool-call arguments"):
        build(tiers=[openai_tier("gpt-4o-mini")], response_model=Summary, gates=[gate])
    json_tier = openai_tier("gpt-4o-mini", mode=instructor.Mode.JSON_SCHEMA)
    with pytest.raises(ConfigurationError, match="Anthropic's API returns no logprobs"):
        build(tiers=[json_tier, anthropic_tier()], response_model=Summary, gates=[gate])


def test_self_reported_scores_reach_the_receipt(
    build: Any, server: ProviderServer, openai_tier: Any
) -> None:
    extract = build(
        tiers=cheap_and_strong(openai_tier),
        response_model=Rated,
        gates=[self_reported(threshold=0.7)],
    )
    server.script("gpt-4o-mini", Reply(data={"summary": "Paid.", "confidence": 40}))
    server.script("gpt-4o", Reply(data={"summary": "Paid in full.", "confidence": 0.95}))
    receipt = receipt_of(extract("doc"))
    cheap, strong = receipt.attempts
    assert cheap.reason == "self_reported: self-reported confidence 0.40 < 0.70"
    assert cheap.scores == {"self_reported": pytest.approx(0.4)}
    assert strong.scores == {"self_reported": pytest.approx(0.95)}


def test_per_tier_gates_check_only_their_tier(
    build: Any, server: ProviderServer, openai_tier: Any
) -> None:
    tiers = [openai_tier("gpt-4o-mini", gates=[min_length("summary", 20)]), openai_tier("gpt-4o")]
    extract = build(tiers=tiers, response_model=Summary)
    server.script("gpt-4o-mini", Reply(data={"summary": "short"}))
    server.script("gpt-4o", Reply(data={"summary": "short too"}))
    result = extract("doc")
    assert result.summary == "short too"
    assert receipt_of(result).answered_by == "openai/gpt-4o"


def test_a_user_written_gate_sync_and_async_reason_verbatim(
    build: Any, face: str, server: ProviderServer, openai_tier: Any
) -> None:
    reason = "the total must be quoted from the invoice, found «12.5» nowhere"
    seen: list[GateContext] = []

    def quoted(answer: Summary, context: GateContext) -> float | None:
        seen.append(context)
        if answer.summary == "bad":
            raise Rejected(reason)
        return 0.75

    async def quoted_async(answer: Summary, context: GateContext) -> float | None:
        return quoted(answer, context)

    quoted_async.__name__ = "quoted"
    gate = quoted if face == "sync" else quoted_async
    extract = build(tiers=cheap_and_strong(openai_tier), response_model=Summary, gates=[gate])
    server.script("gpt-4o-mini", Reply(data={"summary": "bad"}))
    server.script("gpt-4o", Reply(data={"summary": "good"}))

    receipt = receipt_of(extract("doc"))

    cheap, strong = receipt.attempts
    assert cheap.reason == f"quoted: {reason}"
    assert (cheap.outcome, cheap.trigger) == ("rejected", "gate")
    assert strong.scores == {"quoted": 0.75}
    assert [c.tier for c in seen] == ["openai/gpt-4o-mini", "openai/gpt-4o"]
    assert seen[0].messages == [{"role": "user", "content": "Extract the invoice in: doc"}]
    assert seen[0].args == ("doc",)
    assert seen[0].completion is not None


def test_an_async_gate_on_a_sync_function_is_refused(openai_tier: Any) -> None:
    async def gate(answer: Any, context: GateContext) -> None:
        return None

    with pytest.raises(ConfigurationError, match="async"):
        escalating(tiers=[openai_tier()], response_model=Summary, gates=[gate])(lambda t: t)


def test_a_wrong_field_name_is_refused_when_decorating(openai_tier: Any) -> None:
    with pytest.raises(ConfigurationError, match="summry"):
        escalating(
            tiers=cheap_and_strong(openai_tier),
            response_model=Summary,
            gates=[min_length("summry", 1)],
        )
