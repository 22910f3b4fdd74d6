"""Features: stable hashes in every process, separate namespaces, JSON answers read by their
values, scores, shape and the user's own features; and what importing costs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping

import pytest

from escalate.learn import Features, extra_name
from escalate.learn._features import answer_values

PROMPT = "Tom has 3 boxes of 4 apples and eats 2. How many are left? Café au lait."
ANSWER = json.dumps({"reasoning": "3 * 4 = 12 apples.\n12 - 2 = 10.\n#### 10", "answer": "10"})
SCORES = {"length": 0.8, "arithmetic": 1.0}

_CHILD = """
import json, sys
from escalate.learn import Features
prompt, answer, scores = json.loads(sys.stdin.read())
vector = Features().vector(prompt, answer, scores)
print(json.dumps(sorted(vector.items())))
"""


def _vector_in_a_process(seed: str) -> list[list[float]]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=json.dumps([PROMPT, ANSWER, SCORES]),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return [list(pair) for pair in json.loads(done.stdout)]


def test_the_vector_is_the_same_in_every_process() -> None:
    here = [list(pair) for pair in sorted(Features().vector(PROMPT, ANSWER, SCORES).items())]
    assert _vector_in_a_process("1") == here
    assert _vector_in_a_process("12345") == here
    assert len(here) > 20


def test_prompt_and_answer_are_separate_namespaces() -> None:
    features = Features()
    as_prompt = set(features.vector("apples", "{}", {}))
    as_answer = set(features.vector("", "apples", {}))
    shapeless = Features(shape=False)
    assert set(shapeless.vector("apples", "", {})).isdisjoint(shapeless.vector("", "apples"))
    assert as_prompt != as_answer


def test_ngrams_are_binary_presence_unigrams_and_bigrams() -> None:
    text_only = Features(shape=False, prompt=False)
    once = text_only.vector("", "red apple")
    assert set(once.values()) == {1.0} and len(once) == 3  # red, apple, "red apple"
    assert text_only.vector("", "red apple red apple") == once | text_only.vector("", "apple red")
    unigrams = Features(shape=False, prompt=False, ngrams=(1, 1))
    assert len(unigrams.vector("", "red apple")) == 2
    with pytest.raises(ValueError, match="ngrams"):
        Features(ngrams=(2, 1))


def test_a_json_answer_is_read_by_its_values() -> None:
    values, fields = answer_values(ANSWER)
    assert values == "3 * 4 = 12 apples.\n12 - 2 = 10.\n#### 10\n10"
    assert fields == {"reasoning": False, "answer": False}
    spaced = json.dumps(json.loads(ANSWER), indent=2)  # the same answer, written otherwise
    assert Features().vector(PROMPT, spaced, SCORES) == Features().vector(PROMPT, ANSWER, SCORES)
    assert answer_values("plain text") == ("plain text", {})
    assert answer_values("{not json") == ("{not json", {})


def test_empty_fields_are_features() -> None:
    features = Features(prompt=False, answer=False)
    full = features.vector("", json.dumps({"answer": "10", "note": "x"}))
    empty = features.vector("", json.dumps({"answer": None, "note": "x"}))
    assert set(empty) - set(full)  # an "empty:answer" and the share of empty fields


def test_scores_are_values_and_missing_named_scores_are_features() -> None:
    every = Features(prompt=False, answer=False, shape=False)
    assert sorted(every.vector("", "", {"a": 0.25, "b": 0.5}).values()) == [0.25, 0.5]
    named = Features(prompt=False, answer=False, shape=False, scores=("a", "c"))
    vector = named.vector("", "", {"a": 0.25, "b": 0.5})
    assert sorted(vector.values()) == [0.25, 1.0]  # a's value, c missing; b not read
    assert named.vector("", "", {}) == named.vector("", "", None)
    assert len(named.vector("", "", None)) == 2


def test_user_features_are_named_and_hashed_apart() -> None:
    def units(prompt: str, answer: str) -> Mapping[str, float]:
        return {"mentions_units": float("apples" in answer), "prompt_words": len(prompt.split())}

    plain = Features()
    extra = Features(extra=units)
    added = set(extra.vector(PROMPT, ANSWER, SCORES)) - set(plain.vector(PROMPT, ANSWER, SCORES))
    assert len(added) == 2
    assert extra.to_json()["extra"] == extra_name(units)
    assert extra_name(units).endswith(
        "test_user_features_are_named_and_hashed_apart.<locals>.units"
    )


def test_the_configuration_is_json() -> None:
    features = Features(ngrams=(1, 3), buckets=1024, scores=("a",), prompt=False)
    data = json.loads(json.dumps(features.to_json()))
    assert Features.from_json(data) == features
    with pytest.raises(ValueError, match="unknown feature settings"):
        Features.from_json({**data, "colour": "blue"})


def _imported(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_import_escalate_loads_no_learning_and_scoring_needs_no_numpy() -> None:
    watched = '["escalate.learn", "numpy", "sklearn", "scipy"]'
    found = _imported(
        f"import json, sys, escalate\nprint(json.dumps([m for m in {watched} if m in sys.modules]))"
    )
    assert found == []
    found = _imported(
        "import json, sys\nfrom escalate.learn import Scorer, Features, learned_gate\n"
        "Scorer({1: 0.5}, 0.1).score('a prompt', 'an answer')\n"
        f"print(json.dumps([m for m in {watched} if m in sys.modules]))"
    )
    assert found == ["escalate.learn"]
