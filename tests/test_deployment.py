"""Deployments (escalate._deployment) and the testing kit's fake tiers both satisfy the
engine's Backend protocol (escalate._plan), at runtime and under mypy --strict, so the engine
can rely on it without probing; the seam itself imports no SDK."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from mypy import api

from escalate import Tier
from escalate._config import GatedBackend, build_tiers
from escalate._plan import Backend
from escalate.testing import FunctionTier, ScriptedTier


def test_deployments_and_fake_tiers_are_backends_at_runtime() -> None:
    (built,) = build_tiers([Tier("openai/gpt-4o-mini", fallbacks=["openai/gpt-4o"])])
    backends = [*built.deployments, ScriptedTier("s"), FunctionTier("f", lambda m: {})]
    for backend in backends:
        assert isinstance(backend, Backend), backend
        assert backend.streams is False
    assert not isinstance(built.deployments[0], GatedBackend)
    assert isinstance(ScriptedTier("s", gates=[print]), GatedBackend)
    (fake,) = build_tiers([ScriptedTier("s", gates=[print])])
    assert fake.gates == (print,)
    streaming = build_tiers([Tier("openai/gpt-4o-mini", stream=True)])[0].deployments[0]
    assert streaming.streams is True


def test_deployments_and_fake_tiers_are_backends_under_mypy(tmp_path: Path) -> None:
    snippet = tmp_path / "backends.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from escalate import Tier
            from escalate._plan import Backend
            from escalate._deployment import Deployment
            from escalate.testing import FunctionTier, ScriptedTier

            tier = Tier("openai/gpt-4o-mini")
            backends: list[Backend] = [
                Deployment(tier, name="cheap", tier_name="cheap"),
                ScriptedTier("scripted"),
                FunctionTier("function", lambda messages: {}),
            ]
            """
        )
    )
    out, err, status = api.run(["--strict", str(snippet)])
    assert status == 0, out + err


def test_the_seam_imports_no_sdk_and_no_instructor() -> None:
    code = (
        "import sys, escalate._plan; "
        "assert not {'openai', 'anthropic', 'instructor'} & set(sys.modules), sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
