"""Recorded GSM8K answers of a cheap and a strong model: the data, and the prompt they answered.

The data are real outputs published by RouteLLM (lm-sys/RouteLLM at commit
``0b64fdafe049e596a3f5657c219329f24af24198``; see ``data/gsm8k/NOTICE.md``): for each GSM8K test
question, one greedy 8-shot answer from ``mistralai/Mixtral-8x7B-Instruct-v0.1`` (the cheap tier)
and one from ``gpt-4-1106-preview`` (the strong tier), with RouteLLM's True/False label for each.
The package ships a development split: every second question (660 of 1,319).

RouteLLM labelled an answer right when the last run of digits in it, commas removed, equalled the
gold answer (``get_answer_value`` in RouteLLM's ``evals/gsm8k/generate_responses.py``). That rule
reproduces every label here, mistakes included: it reads ``$18.00`` as ``00``, and
``#### 7 packs and 2 extra glue sticks`` as ``2``. :func:`~escalate.demo.answers.final_answer`
reads decimals and the ``####`` line properly, so it disagrees with 28 of the 1,320 labels. In 26
of them the label calls a right answer wrong. In the other two the label calls ``#### -15`` right
for 15 and ``#### 0.84`` right for 84.

The mechanical checks on an answer's text are beside this module: the final answer and its
tokens in :mod:`escalate.demo.answers`, the arithmetic checker in :mod:`escalate.demo.arithmetic`.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources

__all__ = [
    "CHEAP_MODEL",
    "STRONG_MODEL",
    "Problem",
    "few_shot_prompt",
    "load_problems",
]

CHEAP_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
"""The cheap tier's model name. It is also the CSV column that holds its labels."""

STRONG_MODEL = "gpt-4-1106-preview"
"""The strong tier's model name. It is also the CSV column that holds its labels."""

_PACKAGE = "escalate.demo"
_DATA_DIR = ("data", "gsm8k")
_RESPONSES = "gsm8k_responses.dev.csv"
_QUESTIONS = "test.dev.jsonl"
_TRAIN = "train.first8.jsonl"
_CONTAMINATED = "contaminated_prompts.jsonl"


# --------------------------------------------------------------------------------------------
# The data
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One GSM8K question with both models' recorded answers.

    ``index`` is the question's 0-based position in the shipped dev split. Its position in the
    full GSM8K test set is ``2 * index``. ``gold`` is the number after ``####`` in the gold
    solution, with commas removed. ``cheap_correct`` and ``strong_correct`` are RouteLLM's own
    labels. ``contaminated`` marks the questions that RouteLLM's authors found to be
    near-duplicates of training data. Their published figures leave these questions out.
    """

    index: int
    question: str
    gold: Decimal
    cheap_response: str
    strong_response: str
    cheap_correct: bool
    strong_correct: bool
    contaminated: bool


def _data_text(name: str) -> str:
    # Bytes, then decode: the CSV ends rows with CRLF and has bare LF inside quoted fields, and
    # text mode would rewrite line endings.
    return resources.files(_PACKAGE).joinpath(*_DATA_DIR, name).read_bytes().decode("utf-8")


def _jsonl(name: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in _data_text(name).split("\n") if line.strip()]


def _gold(solution: str) -> Decimal:
    _, sep, tail = solution.rpartition("####")
    if not sep:
        raise ValueError(f"gold solution without '####': {solution[-60:]!r}")
    try:
        return Decimal(tail.strip().replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"gold answer is not a number: {tail.strip()!r}") from None


def _label(text: str) -> bool:
    if text not in ("True", "False"):
        raise ValueError(f"label is not True/False: {text!r}")
    return text == "True"


@functools.cache
def _all_problems() -> tuple[Problem, ...]:
    gold_by_question: dict[str, Decimal] = {}
    for item in _jsonl(_QUESTIONS):
        question, solution = str(item["question"]), str(item["answer"])
        if question in gold_by_question:
            raise ValueError(f"duplicate question in {_QUESTIONS}: {question[:60]!r}")
        gold_by_question[question] = _gold(solution)
    contaminated = {str(item["eval_prompt"]) for item in _jsonl(_CONTAMINATED)}

    reader = csv.DictReader(io.StringIO(_data_text(_RESPONSES), newline=""))
    columns = [CHEAP_MODEL, STRONG_MODEL, f"{CHEAP_MODEL}_response", f"{STRONG_MODEL}_response"]
    missing = [c for c in ["prompt", *columns] if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{_RESPONSES} lacks columns {missing}")
    problems: list[Problem] = []
    for index, row in enumerate(reader):
        question = row["prompt"]
        # The prompt is the question, verbatim. RouteLLM wrote the CSV from test.jsonl in the same
        # order. The join is by exact text, and every row must join.
        gold = gold_by_question.get(question)
        if gold is None:
            raise ValueError(f"{_RESPONSES} row {index} has no question in {_QUESTIONS}")
        problems.append(
            Problem(
                index=index,
                question=question,
                gold=gold,
                cheap_response=row[f"{CHEAP_MODEL}_response"],
                strong_response=row[f"{STRONG_MODEL}_response"],
                cheap_correct=_label(row[CHEAP_MODEL]),
                strong_correct=_label(row[STRONG_MODEL]),
                contaminated=question in contaminated,
            )
        )
    if len(problems) != len(gold_by_question):
        raise ValueError(f"{len(problems)} answer rows but {len(gold_by_question)} questions")
    return tuple(problems)


def load_problems(*, include_contaminated: bool = False) -> list[Problem]:
    """The dev split's questions with both models' answers, in dataset order.

    The data are parsed once and cached, and each call returns a new list. By default the
    questions flagged as contaminated are left out (654 of 660 remain), as in RouteLLM's own
    evaluation.
    """
    return [p for p in _all_problems() if include_contaminated or not p.contaminated]


@functools.cache
def _few_shot_prefix() -> str:
    return "".join(
        f"Question: {item['question']}\nAnswer: {item['answer']}\n\n" for item in _jsonl(_TRAIN)
    )


def few_shot_prompt(question: str) -> str:
    """The 8-shot prompt that both models were given for ``question``.

    The template is the one in RouteLLM's ``evals/gsm8k/generate_responses.py``, which comes
    from SGLang's GSM8K benchmark: eight ``"Question: q\\nAnswer: a"`` blocks from the start of
    GSM8K's training set, separated by blank lines, then ``"Question: <question>\\nAnswer:"``.
    RouteLLM sent this text as one user message. The chat template around that message adds a
    few tokens that :func:`~escalate.demo.answers.count_tokens` does not see, so input-token
    counts built from this prompt are close to what was billed but not exact.
    """
    return f"{_few_shot_prefix()}Question: {question}\nAnswer:"
