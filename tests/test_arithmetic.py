"""Tests for the arithmetic checker (escalate.demo.arithmetic and the expression parser and
claim judge beside it): wrong claims caught, right ones accepted, non-equations skipped."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from escalate.demo import arithmetic
from escalate.demo.arithmetic import arithmetic_errors
from escalate.demo.gsm8k import load_problems


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


def test_the_checker_does_not_use_eval() -> None:
    for name in ("arithmetic.py", "_expressions.py", "_claims.py"):
        source = resources.files("escalate.demo").joinpath(name).read_text(encoding="utf-8")
        assert not re.search(r"\b(eval|exec)\(", source), name
    assert arithmetic.__all__ == ["arithmetic_errors"]
