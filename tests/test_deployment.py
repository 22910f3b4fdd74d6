"""Deployments (escalate._deployment) and the testing kit's fake tiers both satisfy the
engine's Backend protocol (escalate._plan), at runtime and under mypy --strict, so the engine
can rely on it without probing; the seam itself imports no SDK."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mypy import api
from pydantic import BaseModel

from escalate import Tier, receipt_of
from escalate._config import GatedBackend, build_tiers
from escalate._plan import Backend
from escalate.testing import FunctionTier, ScriptedTier
from escalate.testing._server import Malformed, ProviderServer, Reply

from .conftest import FAST_RETRY


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


# --- what a response says, over the real SDKs ---------------------------------------------

PAGE = "<html><body><h1>502 Bad Gateway</h1></body></html>"


class _Total(BaseModel):
    total: int


def _pair(provider: str, server: ProviderServer) -> tuple[list[Tier], str, str]:
    url = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    cheap, strong = (
        ("gpt-4o-mini", "gpt-4o")
        if provider == "openai"
        else ("claude-haiku-4-5", "claude-sonnet-4-5")
    )
    tiers = [
        Tier(
            f"{provider}/{cheap}",
            base_url=url,
            api_key="k",
            fallbacks=[Tier(f"{provider}/{cheap}-backup", base_url=url, api_key="k")],
        ),
        Tier(f"{provider}/{strong}", base_url=url, api_key="k"),
    ]
    return tiers, cheap, strong


def test_an_openai_refusal_is_a_quality_failure_that_moves_up(
    build: Callable[..., Callable[..., Any]], server: ProviderServer
) -> None:
    tiers, cheap, strong = _pair("openai", server)
    server.script(cheap, Reply(refusal="I can't help with that."))
    server.script(strong, Reply(data={"total": 3}))

    answer = build(tiers=tiers, response_model=_Total)("x")

    receipt = receipt_of(answer)
    first = receipt.attempts[0]
    assert (first.outcome, first.trigger) == ("rejected", "refusal")
    assert first.reason == "the model refused: I can't help with that."
    assert receipt.escalations[0].trigger == "refusal" and answer.total == 3


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_200_html_page_is_a_provider_failure_retried_then_sideways(
    build: Callable[..., Callable[..., Any]], server: ProviderServer, provider: str
) -> None:
    tiers, cheap, _ = _pair(provider, server)
    server.script(cheap, *[Malformed(PAGE, content_type="text/html")] * 3)
    server.script(f"{cheap}-backup", Reply(data={"total": 3}))

    answer = build(tiers=tiers, response_model=_Total, retry=FAST_RETRY)("x")

    receipt = receipt_of(answer)
    assert [(a.deployment, a.outcome, a.trigger) for a in receipt.attempts] == [
        *[(tiers[0].display_name, "provider_error", "bad_response")] * 3,
        (f"{provider}/{cheap}-backup", "answered", None),
    ]
    assert "not JSON" in (receipt.attempts[0].reason or "")
    assert [m.kind for m in receipt.moves] == ["sideways"] and not receipt.escalated


def test_anthropic_usage_with_null_input_tokens_keeps_the_output(
    build: Callable[..., Callable[..., Any]], server: ProviderServer
) -> None:
    tiers, cheap, _ = _pair("anthropic", server)
    server.script(cheap, Reply(data={"total": 3}, usage={"input_tokens": None}))

    receipt = receipt_of(build(tiers=tiers, response_model=_Total)("x"))

    attempt = receipt.attempts[0]
    assert attempt.input_tokens is None and attempt.output_tokens and attempt.output_tokens > 0
    assert attempt.raw_output == '{"total": 3}' and attempt.cost_usd is None


def test_each_event_loop_closes_the_clients_it_opened(server: ProviderServer) -> None:
    # Each asyncio.run used to leave the previous loop's SDK clients open (ResourceWarning:
    # unclosed transport); the clients escalate built now close as their loop shuts down.
    script = textwrap.dedent(
        f"""
        import asyncio, gc, warnings
        warnings.simplefilter("error", ResourceWarning)
        from pydantic import BaseModel
        from escalate import Tier, escalating

        class A(BaseModel):
            total: int

        @escalating(
            tiers=[Tier("openai/gpt-4o-mini", base_url={server.openai_base_url!r}, api_key="k")],
            response_model=A,
        )
        async def ask() -> str:
            return "x"

        for _ in range(5):
            asyncio.run(ask())
        gc.collect()
        print("ok")
        """
    )
    for _ in range(5):
        server.script("gpt-4o-mini", Reply(data={"total": 1}))
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip() == "ok", done.stderr
    assert "ResourceWarning" not in done.stderr and "unclosed" not in done.stderr, done.stderr


def test_building_clients_is_not_on_an_attempts_clock(server: ProviderServer) -> None:
    # The first call of a process imports the SDK and instructor (seconds here): a tier
    # that escalates when slower than 0.5 s must not be judged slow for it.
    script = textwrap.dedent(
        f"""
        from pydantic import BaseModel
        from escalate import Tier, escalating, receipt_of

        class A(BaseModel):
            total: int

        url = {server.openai_base_url!r}
        tiers = [
            Tier("openai/gpt-4o-mini", base_url=url, api_key="k", timeout=0.5,
                 on_timeout="escalate"),
            Tier("openai/gpt-4o", base_url=url, api_key="k"),
        ]
        receipt = receipt_of(escalating(tiers=tiers, response_model=A)(lambda: "x")())
        print(receipt.answered_by, receipt.attempts[0].latency_s < 0.5)
        """
    )
    server.script("gpt-4o-mini", Reply(data={"total": 1}))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.split() == ["openai/gpt-4o-mini", "True"], done.stderr
