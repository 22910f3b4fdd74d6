"""Tests for escalate.demo.answers: reading the final answer of a GSM8K answer's text, its
explicit answer line, its correctness against RouteLLM's labels, and its tokens."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from escalate.demo.answers import count_tokens, final_answer, has_answer_line, is_correct
from escalate.demo.gsm8k import few_shot_prompt, load_problems


def _routellm_value(text: str) -> int | None:
    """RouteLLM's own reading (``get_answer_value``): the last run of digits, commas removed."""
    numbers = re.findall(r"\d+", text.replace(",", ""))
    return int(numbers[-1]) if numbers else None


# --------------------------------------------------------------------------------------------
# Final answers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("She sells 9 eggs for 9 * $2 = $<<9*2=18>>18.\n#### 18", "18"),
        ("#### 1,250\n\n", "1250"),
        ("#### $20.00", "20.00"),
        ("#### -15\n\n(Note: The answer is negative because she loses money.)", "-15"),
        ("#### (520 * 450) / 468 = 487.57 (rounded to two decimal places)\n\n", "487.57"),
        ("#### 225 minutes or 3 hours and 45 minutes", "225"),
        ("So 2 + 3 = 5 apples. The answer is 5.", "5"),
        ("Answer: Judy read 160 pages in two weeks.", "160"),
        ("the correct answer is 66 - 10 = <<66-10=56>>56 students.", "56"),
        ("She sells each egg for $2, so she makes 9 * $2 = $18 every day.", "18"),
        ("So, she has to pay a total of $4.00 + $2.00 = $6.00.", "6.00"),
        ("Therefore, Marcy's pension would be $25,000.", "25000"),
        ("The temperature is -5 degrees.", "-5"),
        # The last number, as RouteLLM-style evaluators read it, even when a sentence ends with
        # a number that is not the answer.
        ("84 / 12 = 7 dozens.\n\nClaire will eat 7 dozens of eggs in 4 weeks.", "4"),
    ],
)
def test_final_answer(text: str, expected: str) -> None:
    assert final_answer(text) == Decimal(expected)


def test_final_answer_without_a_number() -> None:
    assert final_answer("") is None
    assert final_answer("It is not possible to determine.") is None


def test_final_answer_of_a_cut_off_response() -> None:
    text = load_problems(include_contaminated=True)[1].cheap_response
    assert text.endswith("= $<<80000+50000=130000>>130,00")
    assert final_answer(text) == Decimal(130)
    assert not is_correct(text, Decimal(70000))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Step.\n#### 18", True),
        ("#### $57.00", True),
        ("So the answer is 42.", True),
        ("Answer: 160 pages", True),
        ("She makes 9 * $2 = $18 every day at the farmers' market.", False),
        ("Wendi gives 15 + 25 = <<15+2", False),
        ("#### \n\n", False),
        ("the correct answer is not possible to determine", False),
    ],
)
def test_has_answer_line(text: str, expected: bool) -> None:
    assert has_answer_line(text) is expected


def test_is_correct() -> None:
    assert is_correct("#### 18", Decimal(18))
    assert is_correct("It costs $18.00 in total.", Decimal(18))
    assert not is_correct("#### 17", Decimal(18))
    assert not is_correct("no idea", Decimal(18))


def test_routellm_rule_reproduces_every_label() -> None:
    for p in load_problems(include_contaminated=True):
        gold = int(p.gold)
        assert (_routellm_value(p.cheap_response) == gold) is p.cheap_correct
        assert (_routellm_value(p.strong_response) == gold) is p.strong_correct


def test_is_correct_agrees_with_the_labels() -> None:
    problems = load_problems(include_contaminated=True)
    cheap = [is_correct(p.cheap_response, p.gold) == p.cheap_correct for p in problems]
    strong = [is_correct(p.strong_response, p.gold) == p.strong_correct for p in problems]
    # Measured: 655/660 (99.2%) for Mixtral, 637/660 (96.5%) for GPT-4.
    assert sum(cheap) / len(cheap) >= 0.99
    assert sum(strong) / len(strong) >= 0.96
    # Every GPT-4 disagreement is a label error: "$6.00" is right, but RouteLLM read "00".
    for p, agrees in zip(problems, strong, strict=True):
        if not agrees:
            assert is_correct(p.strong_response, p.gold) and not p.strong_correct
            assert _routellm_value(p.strong_response) == 0


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


def test_count_tokens_is_cl100k() -> None:
    assert count_tokens("") == 0
    assert count_tokens("hello world") == 2
    # Special-token text is ordinary text, not an error.
    assert count_tokens("<|endoftext|>") > 1
    prefix = count_tokens(few_shot_prompt(""))
    assert 1000 < prefix < 1300
    question = load_problems()[0].question
    assert count_tokens(few_shot_prompt(question)) > prefix
