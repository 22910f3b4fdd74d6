"""complete, directly: cut-off completions of either provider, blank answers."""

from __future__ import annotations

from pydantic import BaseModel

from escalate.gates import complete
from tests._gates_helpers import (
    answer,
    anthropic_message,
    ctx,
    openai_completion,
    passes,
    reason_of,
)


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
