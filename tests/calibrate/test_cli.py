"""``escalate calibrate`` on a function of the user's: an evaluation set from JSONL, the
pick written to the thresholds file, picked again from the JSON, and bad arguments."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from escalate.calibrate import load_items, threshold
from escalate.cli import main
from escalate.testing._server import ProviderServer

from .conftest import ITEMS

MODULE = """
import os
from pydantic import BaseModel
from escalate import Tier, escalating
from escalate.calibrate import score_gate


class Answer(BaseModel):
    value: int
    confidence: float


def confidence(answer, context):
    return answer.confidence


def right(answer, item):
    return answer.value == item.expected


@escalating(
    tiers=[
        Tier("openai/gpt-4o-mini", base_url=os.environ["CAL_OPENAI"], api_key="k",
             gates=[score_gate(confidence, 0.5, name="confidence")]),
        Tier("anthropic/claude-sonnet-4-5", base_url=os.environ["CAL_ANTHROPIC"], api_key="k"),
    ],
    response_model=Answer,
)
def solve(question: str) -> str:
    return f"Answer the question: {question}"
"""


@pytest.fixture
def app(served: ProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("CAL_OPENAI", served.openai_base_url)
    monkeypatch.setenv("CAL_ANTHROPIC", served.anthropic_base_url)
    monkeypatch.delenv("ESCALATE_THRESHOLDS", raising=False)
    (tmp_path / "cal_app.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    lines = [json.dumps({"input": item.args[0], "expected": item.expected}) for item in ITEMS]
    (tmp_path / "set.jsonl").write_text("\n".join(lines) + "\n")
    yield tmp_path
    sys.modules.pop("cal_app", None)


def _run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        status = main(argv)
    return status, out.getvalue()


def test_the_command_calibrates_a_function(app: Path) -> None:
    assert [i.args for i in load_items(app / "set.jsonl")] == [i.args for i in ITEMS]
    out = app / "cal"
    common = ["calibrate", "cal_app:solve", "--eval", str(app / "set.jsonl"), "--gate"]
    status, text = _run(
        [*common, "confidence", "--grader", "cal_app:right", "--out", str(out), "--replay"]
    )
    assert status == 0, text
    assert "picked ->" in text and "matches the table's row exactly" in text
    assert threshold("solve.confidence", default=0, path=out / "thresholds.json") == 0.95
    assert (out / "calibration.json").exists() and (out / "calibration.png").exists()

    # Pick again from the file, with another objective: no model is called.
    status, text = _run(
        [
            *("calibrate", "--from", str(out / "calibration.json"), "--max-escalation", "40%"),
            *("--out", str(out), "--no-plot", "--quiet"),
        ]
    )
    assert status == 0, text
    assert threshold("solve.confidence", default=0, path=out / "thresholds.json") == 0.3

    status, text = _run(
        [
            *(*common, "confidence", "--expected-field", "value", "--min-accuracy", "0.99"),
            *("--out", str(out), "--no-plot", "--quiet"),
        ]
    )
    assert status == 1 and "No threshold picked" in text


def test_the_command_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["calibrate"],
        ["calibrate", "--gsm8k", "mod:fn"],
        ["calibrate", "mod:fn"],
        ["calibrate", "--gsm8k", "--min-accuracy", "1.5"],
        ["calibrate", "mod:fn", "--limit", "3"],
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2, argv
