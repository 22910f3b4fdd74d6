"""Tests for escalate.demo.gsm8k: the recorded GSM8K data and the mechanical answer checks."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from decimal import Decimal
from importlib import resources

import pytest

from escalate.demo import gsm8k
from escalate.demo.gsm8k import (
    CHEAP_MODEL,
    STRONG_MODEL,
    Problem,
    arithmetic_errors,
    count_tokens,
    few_shot_prompt,
    final_answer,
    has_answer_line,
    is_correct,
    load_problems,
)

DATA = resources.files("escalate.demo").joinpath("data", "gsm8k")


def _routellm_value(text: str) -> int | None:
    """RouteLLM's own reading (``get_answer_value``): the last run of digits, commas removed."""
    numbers = re.findall(r"\d+", text.replace(",", ""))
    return int(numbers[-1]) if numbers else None


# --------------------------------------------------------------------------------------------
# The data
# --------------------------------------------------------------------------------------------


def test_package_ships_the_data_with_its_licence_and_notice() -> None:
    names = {entry.name for entry in DATA.iterdir()}
    assert {
        "gsm8k_responses.dev.csv",
        "test.dev.jsonl",
        "train.first8.jsonl",
        "contaminated_prompts.jsonl",
        "LICENSE",
        "NOTICE.md",
    } <= names
    assert (
        DATA.joinpath("LICENSE").read_text(encoding="utf-8").lstrip().startswith("Apache License")
    )
    notice = DATA.joinpath("NOTICE.md").read_text(encoding="utf-8")
    assert "0b64fdafe049e596a3f5657c219329f24af24198" in notice
    assert "2406.18665" in notice


def test_every_row_joins_its_question_by_exact_text_and_in_the_same_order() -> None:
    rows = list(
        csv.DictReader(
            io.StringIO(
                DATA.joinpath("gsm8k_responses.dev.csv").read_bytes().decode("utf-8"), newline=""
            )
        )
    )
    questions = [
        json.loads(line)["question"]
        for line in DATA.joinpath("test.dev.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(rows) == len(questions) == 660
    assert [row["prompt"] for row in rows] == questions

    problems = load_problems(include_contaminated=True)
    assert len(problems) == 660
    assert [p.index for p in problems] == list(range(660))
    assert [p.question for p in problems] == questions


def test_contaminated_questions_are_left_out_by_default() -> None:
    everything = load_problems(include_contaminated=True)
    contaminated = [p.index for p in everything if p.contaminated]
    # RouteLLM flagged 12 test questions; the 6 with even GSM8K index (0, 2, 18, 364, 530, 932)
    # are in this split, at half their index.
    assert contaminated == [0, 1, 9, 182, 265, 466]
    default = load_problems()
    assert len(default) == 654
    assert not any(p.contaminated for p in default)
    assert {p.index for p in default} == {p.index for p in everything} - set(contaminated)


def test_problem_fields() -> None:
    first = load_problems(include_contaminated=True)[0]
    assert isinstance(first, Problem)
    assert first.question.startswith("Janet\u2019s ducks lay 16 eggs per day.")
    assert first.gold == Decimal(18)
    assert first.cheap_correct and first.strong_correct
    assert first.cheap_response.rstrip().endswith("#### 18")
    assert "9 * $2 = $18" in first.strong_response
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.gold = Decimal(0)  # type: ignore[misc]

    problems = load_problems(include_contaminated=True)
    # Golds with thousands commas in the solution lose them.
    assert Decimal(70000) in {p.gold for p in problems}
    assert sum(p.cheap_correct for p in problems) == 419
    assert sum(p.strong_correct for p in problems) == 566
    assert CHEAP_MODEL == "mistralai/Mixtral-8x7B-Instruct-v0.1"
    assert STRONG_MODEL == "gpt-4-1106-preview"


def test_load_is_cached_but_returns_a_new_list() -> None:
    a, b = load_problems(), load_problems()
    assert a == b and a is not b
    assert all(x is y for x, y in zip(a, b, strict=True))
    a.clear()
    assert len(load_problems()) == 654


def test_perfect_cascade_matches_the_datasets_published_shape() -> None:
    problems = load_problems()
    kept = sum(p.cheap_correct for p in problems) / len(problems)
    cascade = sum(p.cheap_correct or p.strong_correct for p in problems) / len(problems)
    assert kept == pytest.approx(415 / 654)  # 63.5% (README: 63.7% on all 1,307)
    assert cascade == pytest.approx(609 / 654)  # 93.1% (README: 93.0%)


# --------------------------------------------------------------------------------------------
# The prompt and tokens
# --------------------------------------------------------------------------------------------


def test_few_shot_prompt_has_eight_examples_then_the_question() -> None:
    prompt = few_shot_prompt("What is 2 + 2?")
    assert prompt.startswith("Question: Natalia sold clips to 48 of her friends in April")
    assert prompt.endswith("\n\nQuestion: What is 2 + 2?\nAnswer:")
    assert prompt.count("Question: ") == 9
    assert prompt.count("\nAnswer: ") == 8
    assert "\nAnswer: Natalia sold 48/2 = <<48/2=24>>24 clips in May." in prompt
    assert prompt.count("\n####") == 8


def test_count_tokens_is_cl100k() -> None:
    assert count_tokens("") == 0
    assert count_tokens("hello world") == 2
    # Special-token text is ordinary text, not an error.
    assert count_tokens("<|endoftext|>") > 1
    prefix = count_tokens(few_shot_prompt(""))
    assert 1000 < prefix < 1300
    question = load_problems()[0].question
    assert count_tokens(few_shot_prompt(question)) > prefix


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
# Arithmetic errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Natalia sold 48/2 = <<48/2=25>>25 clips in May.", ["48/2=25 (is 24)"]),
        ("She has 16 - 3 = 12 eggs left.", ["16 - 3 = 12 (is 13)"]),
        ("So 3 x 4 = 13 boxes.", ["3 x 4 = 13 (is 12)"]),
        ("So 3 \u00f7 4 = 2 boxes.", ["3 \u00f7 4 = 2 (is 0.75)"]),
        ("In all 1,200 + 300 = 1,600 people.", ["1,200 + 300 = 1,600 (is 1500)"]),
        ("She pays 0.25 * 40 = 11 dollars.", ["0.25 * 40 = 11 (is 10)"]),
        ("Then 3 + 4 * 2 = 12 cups.", ["3 + 4 * 2 = 12 (is 11)"]),
        ("That is (12 / 20) x 100 = 55%.", ["(12 / 20) x 100 = 55% (is 60)"]),
        ("So 50% of $40 = $25 saved.", ["50% of $40 = $25 (is 20)"]),
        ("Total: 8 + 6 + (5 * 5) = 8 + 6 + 25 = 40 hours.", ["8 + 6 + 25 = 40 (is 39)"]),
        ("\\( 3 \\times 4 = 13 \\) apples.", ["3 * 4 = 13 (is 12)"]),
        ("He pays 220 \\* $4000 = $800,000 a year.", ["220 * $4000 = $800,000 (is 880000)"]),
        ("The price is $<<2*3=5>>5.\nThe total is 2 * 3 = 5 dollars.", ["2*3=5 (is 6)"]),
    ],
)
def test_arithmetic_errors_catches_wrong_claims(text: str, expected: list[str]) -> None:
    assert arithmetic_errors(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "She sells these 9 eggs for 9 * $2 = $<<9*2=18>>18.\n#### 18",
        "So 3 x 4 = 12 and 3x4 = 12 and 3 \u00d7 4 = 12 and 10 \u2212 3 = 7 boxes.",
        "In all 1,200 + 300 = 1,500 people.",
        "Each gets 10/3 = 3.33 pies, or 2/3 = 0.67, or 2/3 = 0.66, or 7 / 2 = 3 whole ones.",
        "It is 30% * 80% = 24%, and 3/4 * 100 = 75%, and 50% of $40 = $20.",
        "Total: 8 + 6 + 4 + (5 * 5) = 8 + 6 + 4 + 25 = 43 hours.",
        "$750 (earnings) - $500 (car payment) = $250 a month.",
        "16 female fishes - 11 male fishes = 5 more female fishes.",
        "\\( $30 - $20 - $2 = $8 \\) and \\( x = \\frac{400}{8} \\)\n\\( \\frac{400}{8} = 50 \\).",
        "First 48 / 2 = 24 * 3 = 72 cookies.",  # a running calculation
        "Uriah removes 7 / 1/2 = 14 toys.",  # 7 / (1/2)
        "The share is 0.33 * 300 = 100 dollars.",  # 0.33 rounds 1/3
        "The mean is 140/3 = <<140/3=46.666666666666664>>46.67 points.",
        "So 20 - 1 - 8 = 11 people, and -5 + 3 = -2 degrees.",
        "- 16 - 3 = 13 eggs",  # a list bullet, not a minus sign
    ],
)
def test_arithmetic_errors_accepts_right_claims(text: str) -> None:
    assert arithmetic_errors(text) == []


@pytest.mark.parametrize(
    ("right", "wrong"),
    [
        ("$750 (earnings) - $500 (rent) = $250 a month.", "$750 (earnings) - $500 (rent) = $350."),
        ("16 female fishes - 11 male fishes = 5 more.", "16 female fishes - 11 male fishes = 6."),
        ("He works 3 weeks * 7 days/week = 21 days.", "He works 3 weeks * 7 days/week = 28 days."),
        ("\\( 3 \\times 4 = 12 \\) boxes.", "\\( 3 \\times 4 = 14 \\) boxes."),
        ("\\( \\frac{400}{8} = 50 \\) bags.", "\\( \\frac{400}{8} = 40 \\) bags."),
        ("First 48 / 2 = 24 * 3 = 72 cookies.", "First 48 / 2 = 24 * 3 = 62 cookies."),
        ("Uriah removes 7 / 1/2 = 14 toys.", "Uriah removes 7 / 1/2 = 15 toys."),
        ("It is 50% of $40 = $20 now.", "It is 50% of $40 = $30 now."),
        ("- 16 - 3 = 13 eggs", "- 16 - 3 = 14 eggs"),
        ("So 10 \u2212 3 = 7 boxes.", "So 10 \u2212 3 = 8 boxes."),
        ("The mean is <<140/3=46.666666666666664>>.", "The mean is <<140/3=45.666666666666664>>."),
        ("The share is 0.33 * 300 = 100 dollars.", "The share is 0.33 * 300 = 110 dollars."),
    ],
)
def test_arithmetic_errors_checks_each_form(right: str, wrong: str) -> None:
    assert arithmetic_errors(right) == []
    assert len(arithmetic_errors(wrong)) == 1


@pytest.mark.parametrize(
    "text",
    [
        "It takes 3-4 hours, on 12/25/2020, at a ratio of 7:13, until 10:30 pm.",
        "Let x be the number.\n2x = 2 * 11\n2x = 22\nx = 11 apples.",
        "100 inches = 9 * B + 10 inches",
        "1/2 hour = 30 minutes, and 4 feet + 3 inches = 51 inches.",
        "So 90 / 60 = 1 hour and 30 minutes.",
        "After 1 year = $120 * (1 + 0.05) = $126 in the account.",
        "2^3 * 5 = 40, and 3 times 4 + 2 = 14, and 1 1/2 * 2 = 3 cups.",
        "The value is 80,000 + 50,000 = $<<80000+50000=130000>>130,00",  # cut off mid-number
        "In total 2 + 2 = 5",  # the text ends on the number: it may have been cut off
        "Nothing to do: 5 / 0 = 3 apples.",  # division by zero is not judged
        "__import__('os').system('true') = 5 and 1e9 = 2.",
    ],
)
def test_arithmetic_errors_skips_what_is_not_an_equation(text: str) -> None:
    assert arithmetic_errors(text) == []


def test_arithmetic_errors_on_recorded_answers() -> None:
    problems = load_problems(include_contaminated=True)
    assert arithmetic_errors(problems[0].cheap_response) == []
    assert arithmetic_errors(problems[0].strong_response) == []
    # Mixtral wrote the same wrong product in prose and annotation; it is listed once.
    assert arithmetic_errors(problems[305].cheap_response) == ["490*194=94660 (is 95060)"]
    assert arithmetic_errors(problems[590].strong_response) == ["2/5 * 4000 = 800 (is 1600)"]


def test_arithmetic_errors_separate_wrong_cheap_answers_from_right_ones() -> None:
    problems = load_problems()
    right = [p for p in problems if p.cheap_correct]
    wrong = [p for p in problems if not p.cheap_correct]
    flagged_right = sum(bool(arithmetic_errors(p.cheap_response)) for p in right)
    flagged_wrong = sum(bool(arithmetic_errors(p.cheap_response)) for p in wrong)
    # Measured: 2 of 415 right answers (0.5%) and 45 of 239 wrong ones (18.8%). For GPT-4 it is
    # 0 of 562 and 1 of 92: its wrong answers come from wrong reasoning, not wrong arithmetic.
    assert flagged_right / len(right) <= 0.01
    assert flagged_wrong / len(wrong) >= 0.15


def test_module_does_not_use_eval() -> None:
    source = resources.files("escalate.demo").joinpath("gsm8k.py").read_text(encoding="utf-8")
    assert not re.search(r"\b(eval|exec)\(", source)
    assert set(gsm8k.__all__) >= {"Problem", "load_problems", "arithmetic_errors"}
