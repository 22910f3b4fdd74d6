"""The scorer's model file: JSON, stable, versioned; loaded, it scores exactly as saved;
unknown formats and a missing ``extra`` are refused."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from escalate.learn import Example, Features, Scorer, train

TEXTS = [
    ("How many apples?", '{"reasoning": "I checked: 3 * 4 = 12.", "answer": "12"}', {"a": 0.9}),
    ("How many pears?", '{"reasoning": "maybe 7, a guess", "answer": "7"}', {"a": 0.2}),
    ("Café?", "plain text, no JSON", {}),
    ("", "", None),
]


def lengths(prompt: str, answer: str) -> Mapping[str, float]:
    return {"answer_chars": len(answer) / 100}


def _examples() -> list[Example]:
    out = []
    for i in range(40):
        right = i % 2 == 0
        answer = f"step {i} checked twice" if right else f"guess {i} maybe"
        out.append(Example(f"question {i}", answer, right, {"a": 0.5 + 0.1 * right}))
    return out


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return train(_examples(), features=Features(extra=lengths), folds=4).scorer


def test_a_loaded_model_scores_exactly_as_the_saved_one(scorer: Scorer, tmp_path: Path) -> None:
    path = scorer.save(tmp_path / "model.json")
    loaded = Scorer.load(path, extra=lengths)
    assert loaded == scorer
    for prompt, answer, scores in TEXTS:
        assert loaded.score(prompt, answer, scores) == scorer.score(prompt, answer, scores)
    assert all(0 < scorer.score(p, a, s) < 1 for p, a, s in TEXTS)


def test_the_file_is_sorted_versioned_json_and_stable(scorer: Scorer, tmp_path: Path) -> None:
    first = scorer.save(tmp_path / "a.json").read_text()
    again = Scorer.load(tmp_path / "a.json", extra=lengths).save(tmp_path / "b.json")
    assert again.read_text() == first
    data = json.loads(first)
    assert data["format"] == 1 and data["kind"] == "escalate.learn.Scorer"
    assert list(data) == sorted(data)
    buckets = [bucket for bucket, _ in data["weights"]]
    assert buckets == sorted(buckets) and all(weight for _, weight in data["weights"])
    meta = data["metadata"]
    assert meta["examples"] == 40 and meta["sources"] == {"eval": 40}
    assert {"trained_at", "cv_auc", "escalate_version", "sklearn_version"} <= set(meta)
    assert data["features"]["extra"].endswith("test_model:lengths")


def test_an_unknown_format_is_refused(scorer: Scorer, tmp_path: Path) -> None:
    data = scorer.to_json()
    path = tmp_path / "future.json"
    path.write_text(json.dumps({**data, "format": 2}))
    with pytest.raises(ValueError, match="unknown model file format 2"):
        Scorer.load(path, extra=lengths)
    path.write_text(json.dumps({"thresholds": {}}))
    with pytest.raises(ValueError, match="not an escalate learned-gate model file"):
        Scorer.load(path)
    path.write_text("not json at all")
    with pytest.raises(ValueError, match="not a learned-gate model file"):
        Scorer.load(path)


def test_extra_features_must_be_given_again(scorer: Scorer, tmp_path: Path) -> None:
    path = scorer.save(tmp_path / "model.json")
    with pytest.raises(ValueError, match="a callable is not saved in the model file"):
        Scorer.load(path)

    def other(prompt: str, answer: str) -> Mapping[str, float]:
        return {}

    with pytest.raises(ValueError, match="give the same function"):
        Scorer.load(path, extra=other)
    plain = Scorer({3: 1.0}, 0.0).save(tmp_path / "plain.json")
    with pytest.raises(ValueError, match="without extra features"):
        Scorer.load(plain, extra=lengths)


def test_the_score_is_a_sigmoid_that_never_overflows() -> None:
    features = Features(prompt=False, shape=False, ngrams=(1, 1))
    (bucket,) = features.vector("", "word")
    assert Scorer({bucket: 1e6}, 0.0, features).score("", "word") == 1.0
    assert Scorer({bucket: -1e6}, 0.0, features).score("", "word") == 0.0
    assert Scorer({}, 0.0, features).score("", "anything") == 0.5
    with pytest.raises(ValueError, match="outside"):
        Scorer({features.buckets: 1.0}, 0.0, features)
