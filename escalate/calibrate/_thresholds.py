"""The thresholds file: where calibrated thresholds are written, and read back where a
gate is built (:func:`threshold`), so a gate's threshold comes from a calibration rather
than from a number typed by feel."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_DIR",
    "THRESHOLDS_ENV",
    "load_thresholds",
    "save_threshold",
    "threshold",
    "thresholds_path",
]

DEFAULT_DIR = Path("escalate-calibration")
"""Where the command line writes by default: ``calibration.json``, ``calibration.png``
and ``thresholds.json``."""

THRESHOLDS_ENV = "ESCALATE_THRESHOLDS"
"""An environment variable naming the thresholds file, read by :func:`threshold`."""


def thresholds_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The thresholds file: ``path`` if given, else ``$ESCALATE_THRESHOLDS``, else
    ``escalate-calibration/thresholds.json`` under the working directory."""
    if path is not None:
        return Path(path)
    env = os.environ.get(THRESHOLDS_ENV)
    return Path(env) if env else DEFAULT_DIR / "thresholds.json"


def load_thresholds(path: str | os.PathLike[str] | None = None) -> dict[str, float]:
    """Every threshold in the file (empty when there is no file)."""
    target = thresholds_path(path)
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    data = json.loads(text)
    values = data.get("thresholds") if isinstance(data, dict) else None
    if not isinstance(values, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values.values()
    ):
        raise ValueError(f"{target} is not a thresholds file: no 'thresholds' object of numbers")
    return {str(k): float(v) for k, v in values.items()}


def threshold(key: str, *, default: float, path: str | os.PathLike[str] | None = None) -> float:
    """The calibrated threshold named ``key``, or ``default`` when the file or the key is
    absent; use it where the gate is built::

        gate = self_reported("confidence", threshold("solve.self_reported", default=0.8))

    The file is :func:`thresholds_path` (``path``, ``$ESCALATE_THRESHOLDS``, or
    ``escalate-calibration/thresholds.json``), written by ``escalate calibrate`` and
    :meth:`Calibration.write_threshold`. A file that is not a thresholds file raises.
    """
    return load_thresholds(path).get(key, float(default))


def save_threshold(
    key: str,
    value: float,
    *,
    path: str | os.PathLike[str] | None = None,
    source: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``key = value`` into the thresholds file, keeping its other keys; ``source``
    (what it was calibrated on) is kept beside it for readers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"a threshold is a finite number, got {value!r}")
    target = thresholds_path(path)
    data: dict[str, Any] = {"thresholds": {}, "sources": {}}
    if target.exists():
        loaded = json.loads(target.read_text(encoding="utf-8"))
        load_thresholds(target)  # refuse to overwrite a file of another kind
        data.update(loaded)
    data["thresholds"] = {**data.get("thresholds", {}), key: float(value)}
    data["sources"] = {**data.get("sources", {}), key: dict(source or {})}
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return target
