"""Tests for escalate.demo.gsm8k: the recorded GSM8K data and the few-shot prompt."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from decimal import Decimal
from importlib import resources

import pytest

from escalate.demo import gsm8k
from escalate.demo.gsm8k import CHEAP_MODEL, STRONG_MODEL, Problem, few_shot_prompt, load_problems

DATA = resources.files("escalate.demo").joinpath("data", "gsm8k")


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
    assert set(gsm8k.__all__) >= {"Problem", "load_problems", "few_shot_prompt"}


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
# The prompt
# --------------------------------------------------------------------------------------------


def test_few_shot_prompt_has_eight_examples_then_the_question() -> None:
    prompt = few_shot_prompt("What is 2 + 2?")
    assert prompt.startswith("Question: Natalia sold clips to 48 of her friends in April")
    assert prompt.endswith("\n\nQuestion: What is 2 + 2?\nAnswer:")
    assert prompt.count("Question: ") == 9
    assert prompt.count("\nAnswer: ") == 8
    assert "\nAnswer: Natalia sold 48/2 = <<48/2=24>>24 clips in May." in prompt
    assert prompt.count("\n####") == 8
