"""The thresholds file: written by a calibration, read where the gate is built."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from escalate.calibrate import Observations, analyse, save_threshold, threshold


def test_the_threshold_file_is_what_the_decorator_reads(
    observed: Observations, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "thresholds.json"
    assert threshold("solve.confidence", default=0.5, path=path) == 0.5  # no file yet
    save_threshold("other.gate", 0.25, path=path)
    result = analyse(observed)
    assert result.key == "solve.confidence"
    result.write_threshold(path)
    assert threshold("solve.confidence", default=0.5, path=path) == 0.95
    assert threshold("other.gate", default=0.5, path=path) == 0.25
    assert threshold("missing", default=0.5, path=path) == 0.5
    source = json.loads(path.read_text())["sources"]["solve.confidence"]
    assert source["items"] == 6 and "objective" in source
    monkeypatch.setenv("ESCALATE_THRESHOLDS", str(path))
    assert threshold("solve.confidence", default=0.5) == 0.95
    path.write_text('{"not": "thresholds"}')
    with pytest.raises(ValueError, match="not a thresholds file"):
        threshold("solve.confidence", default=0.5)
    with pytest.raises(ValueError, match="finite"):
        save_threshold("x", math.inf, path=tmp_path / "t.json")
