"""Reading a GSM8K answer's text: the final number it states (:func:`final_answer`),
whether it states one explicitly (:func:`has_answer_line`), whether it is right
(:func:`is_correct`), and its length in GPT-4's tokens (:func:`count_tokens`).

Nothing here calls a model: a cascade can apply these to a live answer as well as to a
recorded one. Why :func:`final_answer` disagrees with some of RouteLLM's labels is told in
:mod:`escalate.demo.gsm8k`.
"""

from __future__ import annotations

import functools
import importlib
import re
import threading
import warnings
from decimal import Decimal
from typing import Protocol, cast

__all__ = ["count_tokens", "final_answer", "has_answer_line", "is_correct"]

# A number as written in an answer: an optional minus and "$", then digits with or without
# thousands commas, then an optional decimal part. The lookbehind stops a match inside a word,
# after a decimal point, and after a comma ("4,6" gives 4, then nothing).
_NUMBER = re.compile(
    r"(?<![\w.,])(?P<sign>-)?\$?(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?P<frac>\.\d+)?"
)
_HASH_LINE = re.compile(r"####(?P<rest>[^\n]*)")
_ANSWER_IS = re.compile(r"\banswer\s*(?:is\b\s*:?|:)(?P<rest>[^\n]*)", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?;](?=\s|$)")


def _number_value(match: re.Match[str]) -> Decimal:
    digits = match["int"].replace(",", "") + (match["frac"] or "")
    return Decimal(f"-{digits}" if match["sign"] else digits)


def _clause_value(clause: str) -> Decimal | None:
    """The number an answer clause states: the first one after its last '=', else its first."""
    _, _, after = clause.rpartition("=")
    match = _NUMBER.search(after)
    return _number_value(match) if match else None


def _explicit_answer(text: str) -> Decimal | None:
    """The number in the last ``#### N`` line, else in the last "the answer is N" clause."""
    for match in reversed(list(_HASH_LINE.finditer(text))):
        value = _clause_value(match["rest"])
        if value is not None:
            return value
    for match in reversed(list(_ANSWER_IS.finditer(text))):
        clause = _SENTENCE_END.split(match["rest"], maxsplit=1)[0]
        value = _clause_value(clause)
        if value is not None:
            return value
    return None


def final_answer(text: str) -> Decimal | None:
    """The final numeric answer that ``text`` gives, or None if it contains no number.

    The rules are tried in order:

    1. The last ``#### N`` line (GSM8K's own answer format, which the few-shot examples teach).
       When the line continues with a calculation such as ``#### 520 * 450 / 468 = 487.57``,
       the number after the last ``=`` is taken.
    2. The last "The answer is N" or "Answer: N" clause.
    3. The last number anywhere in the text. GPT-4 seldom writes ``####``. It states its result
       at the end ("... so she makes 9 * $2 = $18 every day").

    Numbers may carry ``$``, thousands commas, a decimal part and a minus sign. ``$18.00`` reads
    as 18, and a sentence-final period is not a decimal point.
    """
    explicit = _explicit_answer(text)
    if explicit is not None:
        return explicit
    last = None
    for last in _NUMBER.finditer(text):  # noqa: B007 - the loop only finds the last match
        pass
    return _number_value(last) if last else None


def has_answer_line(text: str) -> bool:
    """Whether ``text`` states a final answer explicitly: a ``#### N`` line or "The answer is N".

    This is a mechanical signal. An answer cut off by a token limit lacks the statement, and so
    does one that never reached a conclusion. Many complete answers lack it too: GPT-4 states its
    result in a sentence and omits GSM8K's ``####`` format.
    """
    return _explicit_answer(text) is not None


def is_correct(text: str, gold: Decimal) -> bool:
    """Whether :func:`final_answer` of ``text`` equals ``gold`` (so ``18.00`` equals ``18``)."""
    answer = final_answer(text)
    return answer is not None and answer == gold


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


_ENCODING_LOCK = threading.Lock()


@functools.cache
def _encoding() -> _Encoding:
    with warnings.catch_warnings():
        # bpe_openai reads its tables with a deprecated importlib.resources call.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            module = importlib.import_module("bpe_openai")
        except ImportError as exc:
            raise ImportError(
                "count_tokens needs the bpe-openai package (pip install 'escalate[testing]')"
            ) from exc
        return cast(_Encoding, module.get_encoding("cl100k_base"))


@functools.lru_cache(maxsize=4096)
def count_tokens(text: str) -> int:
    """The number of ``cl100k_base`` tokens in ``text``. This is GPT-4's tokenizer, exact.

    The count uses ``bpe_openai``, which matches tiktoken's cl100k exactly and works offline.
    Special-token strings such as ``<|endoftext|>`` count as ordinary text. Mixtral has its own
    tokenizer, so for Mixtral this count is an approximation. Recent results are cached, since
    the same prompts and answers are counted again and again.
    """
    if not text:
        return 0
    encoding = _encoding()
    with _ENCODING_LOCK:
        return len(encoding.encode_ordinary(text))
