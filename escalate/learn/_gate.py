"""The learned gate: a :class:`Scorer` as a gate like any other.

:func:`learned_gate` is a calibration score gate (:func:`escalate.calibrate.score_gate`):
its score is on the receipt (``attempt.scores[name]``) of every answer it judged, passing
or rejected, it rejects exactly when the score is below its threshold, and so
``calibrate(fn, items, gate=name)`` can pick that threshold on held-out items.

What it reads from the gate's context:

- the prompt: the text of the last user message (text parts joined), or
  ``prompt_of(context)`` when given (e.g. ``lambda c: c.args[0]``, the question alone, when
  the prompt wraps it in a long few-shot template);
- the answer text: the attempt's ``raw_output`` (what the model produced, as the receipts
  keep it, so a gate scores exactly what it was trained on from receipts), else the
  answer's JSON (``model_dump_json``) when the attempt has none, or when the tier sampled
  several answers (the returned one is then the vote's, not the attempt's first);
- the other gates' scores: those the gates before it recorded in this check
  (``context.scores``), so put it after them in the tier's gates.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from escalate.calibrate import ScoreGate, score_gate
from escalate.gates import GateContext
from escalate.learn._features import Extra
from escalate.learn._model import Scorer

__all__ = ["answer_text", "learned_gate", "prompt_text"]


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last user message (a list of parts: its text parts, one a line)."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content", "")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "\n".join(
                str(part.get("text", ""))
                for part in content
                if isinstance(part, Mapping) and part.get("type") == "text"
            )
        return str(content)
    return ""


def answer_text(answer: Any, context: GateContext | None = None) -> str:
    """The answer as text: the attempt's raw output when it is this answer's, else the
    answer's JSON (a model's ``model_dump_json``; a str as is; anything else as JSON)."""
    attempt = context.attempt if context is not None else None
    if (
        attempt is not None
        and attempt.raw_output
        and not (context is not None and context.samples)
        and not attempt.choices
    ):
        return attempt.raw_output
    if isinstance(answer, BaseModel):
        return answer.model_dump_json()
    if isinstance(answer, str):
        return answer
    return json.dumps(answer, default=str, ensure_ascii=False)


def learned_gate(
    scorer: Scorer | str | os.PathLike[str],
    at: float,
    *,
    name: str = "learned",
    extra: Extra | None = None,
    prompt_of: Callable[[GateContext], str] | None = None,
) -> ScoreGate:
    """A gate scoring the answer with ``scorer`` (a :class:`Scorer`, or a model file's
    path, loaded with ``extra`` when the model was trained with extra features). It
    rejects when the score is below ``at`` (a number, or
    ``escalate.calibrate.threshold("fn.learned", default=...)``), and records the score
    as ``attempt.scores[name]`` either way."""
    if not isinstance(scorer, Scorer):
        scorer = Scorer.load(scorer, extra=extra)
    elif extra is not None:
        raise ValueError(
            "learned_gate: extra= is for loading a model file; this Scorer has its features already"
        )
    model = scorer
    read_prompt = prompt_of

    def score(answer: Any, context: GateContext) -> float:
        prompt = read_prompt(context) if read_prompt is not None else prompt_text(context.messages)
        others = {k: v for k, v in context.scores.items() if k != name}
        return model.score(prompt, answer_text(answer, context), others)

    score.__name__ = score.__qualname__ = name
    return score_gate(score, at, name=name)
