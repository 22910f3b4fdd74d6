"""How long a learned gate takes to score one answer (``Scorer.score``, pure Python).

The texts are realistic: prompts of about 100 words (two GSM8K questions) and answers of
about 150 words (Mixtral's recorded GSM8K solutions, as the structured output
``{"reasoning": ..., "answer": ...}`` a tier returns), scored by a model trained on them
(the default features: word unigrams and bigrams of both, a gate score, the shape), so the
weights are as many as a real model has. Prints microseconds per score (the median of
several rounds over every text), and how that time splits between building the feature
vector and the dot product.

A yardstick is printed beside it: the time of ``sum(range(1000))`` on the same machine at the
same moment, to scale the figure to another machine (or to a loaded one).

Run: ``python benchmarks/learn_scoring.py [--texts N] [--rounds R] [--json PATH]`` (needs
the ``learn`` extra to train the model it times; scoring itself needs neither numpy nor
scikit-learn).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import timeit
from collections.abc import Callable
from pathlib import Path

from escalate.demo.answers import final_answer
from escalate.demo.gsm8k import load_problems
from escalate.learn import Example, Features, train


def _words(texts: list[str], start: int, count: int) -> str:
    """About ``count`` words: whole texts from ``start`` on, the last one cut."""
    words: list[str] = []
    i = start
    while len(words) < count:
        words += texts[i % len(texts)].split(" ")
        i += 1
    return " ".join(words[:count])


def _texts(count: int) -> list[tuple[str, str, dict[str, float], bool]]:
    problems = load_problems()
    questions = [p.question for p in problems]
    solutions = [p.cheap_response for p in problems]
    out = []
    for i in range(count):
        problem = problems[i % len(problems)]
        prompt = _words(questions, i, 100)
        reasoning = _words(solutions, i, 150)
        answer = final_answer(problem.cheap_response)
        raw = json.dumps(
            {"reasoning": reasoning, "answer": None if answer is None else str(answer)}
        )
        out.append((prompt, raw, {"gsm8k_score": (i % 7) / 7}, problem.cheap_correct))
    return out


def _per_call(fn: Callable[[], object], calls: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    texts = _texts(args.texts)
    examples = [Example(p, a, label, s, group=str(i)) for i, (p, a, s, label) in enumerate(texts)]
    trained = train(examples, features=Features(), folds=3)
    scorer = trained.scorer
    features = scorer.features
    prompt_words = statistics.mean(len(p.split()) for p, _, _, _ in texts)
    answer_words = statistics.mean(len(json.loads(a)["reasoning"].split()) for _, a, _, _ in texts)
    vectors = [features.vector(p, a, s) for p, a, s, _ in texts]

    def score_all() -> None:
        for p, a, s, _ in texts:
            scorer.score(p, a, s)

    def vector_all() -> None:
        for p, a, s, _ in texts:
            features.vector(p, a, s)

    def dot_all() -> None:
        weights = scorer.weights
        for vector in vectors:
            total = scorer.intercept
            for index, value in vector.items():
                weight = weights.get(index)
                if weight is not None:
                    total += weight * value

    score_all()  # warm up
    per_score = _per_call(score_all, len(texts), args.rounds)
    per_vector = _per_call(vector_all, len(texts), args.rounds)
    per_dot = _per_call(dot_all, len(texts), args.rounds)
    nonzero = statistics.mean(len(v) for v in vectors)
    print(
        f"{len(texts)} texts: prompts of {prompt_words:.0f} words, answers of "
        f"{answer_words:.0f} words; {nonzero:.0f} features per answer; a model of "
        f"{len(scorer.weights)} nonzero weights (cross-validated AUC "
        f"{trained.cv_auc:.3f} on this toy set)"
    )
    print(f"Scorer.score: {per_score:.1f} µs per score (median of {args.rounds} rounds)")
    print(f"  of which the feature vector {per_vector:.1f} µs, the dot product {per_dot:.1f} µs")
    yardstick = min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6
    print(f"yardstick: sum(range(1000)) takes {yardstick:.1f} µs here")
    if args.json is not None:
        figures = {
            "texts": len(texts),
            "prompt_words": prompt_words,
            "answer_words": answer_words,
            "features_per_answer": nonzero,
            "weights": len(scorer.weights),
            "us_per_score": per_score,
            "us_per_vector": per_vector,
            "us_per_dot": per_dot,
            "yardstick_us": yardstick,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
