"""The gate protocol: finite scores, the capability Protocols the built-ins satisfy, and
the package's shape: the protocol imports no family, no module imports in a cycle, and
escalate.gates exports exactly its public names."""

from __future__ import annotations

import ast
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import escalate.gates
from escalate.gates import (
    GateContext,
    Rejected,
    asked_confidence,
    cites,
    complete,
    consistency,
    known_ids,
    logprob_confidence,
    max_length,
    min_length,
    not_empty,
    not_hedging,
    not_refusal,
    self_reported,
)
from escalate.gates._protocol import (
    FollowUpGate,
    Gate,
    ModelAwareGate,
    RequestingGate,
    SamplingGate,
    TierAwareGate,
    finite_score,
)

PACKAGE = Path(escalate.gates.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")

# --- finite scores ------------------------------------------------------------------------


@pytest.mark.parametrize("score", [math.nan, math.inf, -math.inf])
def test_a_rejection_with_a_non_finite_score_is_refused_when_raised(score: float) -> None:
    with pytest.raises(ValueError, match="a gate's score must be a finite number"):
        Rejected("too unsure", score=score)


def test_a_rejection_keeps_a_finite_score_or_none() -> None:
    assert Rejected("low", score=0.25).score == 0.25
    assert Rejected("low", score=0).score == 0
    assert Rejected("low").score is None


def test_finite_score_returns_a_float() -> None:
    def sure(answer: Any, context: GateContext) -> float:
        return 1.0

    assert finite_score(sure, 1) == 1.0 and isinstance(finite_score(sure, 1), float)
    assert finite_score(sure, 0.83) == 0.83


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, float("nan")])
def test_finite_score_names_the_gate_returning_a_non_finite_score(value: float) -> None:
    gate = self_reported()
    with pytest.raises(TypeError, match=r"gate self_reported returned the score .*finite"):
        finite_score(gate, value)


@pytest.mark.parametrize("value", [True, "0.9", None, [0.9]])
def test_finite_score_refuses_what_is_no_number(value: object) -> None:
    def judge(answer: Any, context: GateContext) -> None:
        return None

    with pytest.raises(TypeError, match=r"gate judge returned .*a score must be a finite number"):
        finite_score(judge, value)


# --- capabilities -------------------------------------------------------------------------


FIELD_GATES = [
    min_length("summary", 1),
    max_length("summary", 9),
    not_empty("tags"),
    cites("summary"),
    known_ids("customer.id", set()),
    not_refusal(),
    not_hedging("summary"),
    self_reported(),
]


def test_the_built_in_gates_have_the_capabilities_the_engine_uses() -> None:
    assert isinstance(consistency(3), SamplingGate)
    assert isinstance(asked_confidence(), FollowUpGate)
    logprob = logprob_confidence(0.5)
    assert isinstance(logprob, TierAwareGate) and isinstance(logprob, RequestingGate)
    assert dict(logprob.request_kwargs) == {"logprobs": True, "top_logprobs": 1}
    assert all(isinstance(gate, ModelAwareGate) for gate in FIELD_GATES)


def test_a_plain_function_is_a_gate_with_no_capability() -> None:
    def gate(answer: Any, context: GateContext) -> None:
        return None

    assert isinstance(gate, Gate)
    capabilities = (SamplingGate, FollowUpGate, TierAwareGate, RequestingGate, ModelAwareGate)
    assert not any(isinstance(gate, capability) for capability in capabilities)
    assert not isinstance(complete(), ModelAwareGate)
    assert not isinstance(min_length("summary", 1), SamplingGate)


# --- the package's shape ------------------------------------------------------------------


@pytest.mark.parametrize("module", ["escalate.gates", *(f"escalate.gates.{m}" for m in MODULES)])
def test_each_gates_module_imports_alone(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def _runtime_imports(module: str) -> set[str]:
    """The escalate modules ``module`` imports at run time (TYPE_CHECKING blocks excluded,
    imports inside functions included)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = [ast.Pass()]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found.add(node.module or "")
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "escalate" or name.startswith("escalate.")}


def test_the_protocol_imports_no_family_and_families_only_the_protocol_and_fields() -> None:
    def gates_modules(module: str) -> set[str]:
        return {m for m in _runtime_imports(module) if m.startswith("escalate.gates")}

    assert gates_modules("_protocol") == set()
    assert gates_modules("_fields") == {"escalate.gates._protocol"}
    allowed = {"escalate.gates._protocol", "escalate.gates._fields"}
    for module in MODULES:
        assert gates_modules(module) <= allowed, module


def test_the_gates_import_nothing_that_imports_them_back() -> None:
    """Outside the package, the gates use only modules that never import escalate.gates."""
    outside = {"escalate._receipt", "escalate.exceptions", "escalate._config"}
    for module in MODULES:
        others = {m for m in _runtime_imports(module) if not m.startswith("escalate.gates")}
        assert others <= outside, (module, others - outside)
    root = PACKAGE.parent
    for name in outside:
        text = (root / f"{name.removeprefix('escalate.')}.py").read_text()
        assert "escalate.gates" not in text and "from escalate import" not in text, name


def test_all_is_exactly_the_public_names_of_the_package() -> None:
    # (pytest's assertion rewriting may add names starting with "@" to a plugin's package)
    public = {name for name in vars(escalate.gates) if not name.startswith(("_", "@"))}
    assert set(escalate.gates.__all__) == public
    assert escalate.gates.__all__ == [
        "DEFAULT_HEDGES",
        "DEFAULT_REFUSALS",
        "Gate",
        "GateContext",
        "Rejected",
        "Variant",
        "asked_confidence",
        "cites",
        "complete",
        "consistency",
        "gate_name",
        "is_async_gate",
        "known_ids",
        "logprob_confidence",
        "max_length",
        "min_length",
        "not_empty",
        "not_hedging",
        "not_refusal",
        "self_reported",
        "vote_key",
    ]
