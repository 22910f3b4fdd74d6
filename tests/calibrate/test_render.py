"""Rendering a calibration: the plot is drawn, and without matplotlib it says what to
install."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from escalate.calibrate import Observations, analyse


def test_the_plot_is_drawn(observed: Observations, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = analyse(observed).plot(tmp_path / "plots" / "calibration.png")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


def test_without_matplotlib_the_plot_says_what_to_install(
    observed: Observations, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"pip install 'escalate\[plot\]'"):
        analyse(observed).plot(tmp_path / "calibration.png")
